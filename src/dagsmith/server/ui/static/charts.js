/* dagsmith output charts: bar, line, histogram, scatter of a block's whole output, drawn with the
   vendored uPlot. The server aggregates (GET …/chart); this file only draws and wires the tab. */
(function () {
  "use strict";

  function isoToSecs(v) { var t = Date.parse(v); return isNaN(t) ? null : t / 1000; }

  function draw(box, data) {
    box.innerHTML = "";
    if (data.error) { var p = document.createElement("p"); p.className = "flash error small"; p.setAttribute("role", "alert"); p.textContent = data.error; box.appendChild(p); return; }
    if (!window.uPlot) return;
    var xs = data.x, ys = data.y, labels = null, time = false;
    var numeric = xs.every(function (v) { return typeof v === "number" || v === null; });
    if (!numeric && xs.length && xs.every(function (v) { return typeof v === "string" && /^\d{4}-\d\d-\d\d/.test(v); })) {
      xs = xs.map(isoToSecs); time = true; numeric = true;
    }
    if (!numeric || data.type === "bar") { labels = xs.map(String); xs = xs.map(function (_v, i) { return i; }); }
    var kind = data.type;
    if (kind === "scatter") {  // uPlot wants ascending x: sort the sampled points
      var order = xs.map(function (_v, i) { return i; }).sort(function (a, b) { return xs[a] - xs[b]; });
      xs = order.map(function (i) { return xs[i]; }); ys = order.map(function (i) { return ys[i]; });
    }
    var bars = kind === "bar" || kind === "histogram";
    var series = { label: data.y_label, stroke: "#1f5fbf", width: kind === "scatter" ? 0 : 2, fill: bars ? "rgba(31,95,191,.55)" : undefined };
    if (bars) { series.paths = uPlot.paths.bars({ size: [kind === "histogram" ? 0.98 : 0.7, 80], align: kind === "histogram" ? 1 : 0 }); series.points = { show: false }; series.width = 1; }
    var xrange;
    if (labels) xrange = function (u, min, max) { return [min - 0.5, max + 0.5]; };
    else if (kind === "histogram" && xs.length > 1) { var w = xs[1] - xs[0]; xrange = function (u, min, max) { return [min, max + w]; }; }
    if (kind === "scatter") { series.paths = function () { return null; }; series.points = { show: true, size: 4, fill: "rgba(31,95,191,.6)", stroke: "#1f5fbf" }; }
    var width = Math.max(280, Math.min(box.clientWidth || 600, 900));
    var opts = {
      width: width, height: 260, legend: { show: false }, cursor: { drag: { x: false, y: false } },
      scales: { x: { time: time, range: xrange }, y: { range: function (u, min, max) { return [Math.min(0, min), max * 1.05 || 1]; } } },
      axes: [
        { label: data.x_label, size: labels ? 60 : 40,
          // one tick per category (at most ~20 labelled), never between them
          splits: labels ? function () { var step = Math.max(1, Math.ceil(labels.length / 20)); return xs.filter(function (i) { return i % step === 0; }); } : undefined,
          values: labels ? function (u, splits) { return splits.map(function (i) { var s = labels[i]; return s === undefined ? "" : (s.length > 14 ? s.slice(0, 13) + "…" : s); }); } : undefined },
        { label: data.y_label, size: 60 }
      ],
      series: [{}, series]
    };
    var chart = new uPlot(opts, [xs, ys], box);
    box.uplot = chart;
    if (data.note) { var n = document.createElement("div"); n.className = "muted small"; n.textContent = data.note; box.appendChild(n); }
    box.dataset.points = String(ys.length);
  }

  function load(box, url) {
    box.dataset.state = "loading";
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) { draw(box, data); box.dataset.state = data.error ? "error" : "drawn"; })
      .catch(function (e) { box.textContent = "could not load the chart: " + e; box.dataset.state = "error"; });
  }

  function query(form) {
    var p = new URLSearchParams();
    ["type", "x", "y", "agg", "bins"].forEach(function (k) { var el = form.elements[k]; if (el && el.value) p.set(k, el.value); });
    return p.toString();
  }

  function syncForm(form) {
    var type = form.elements.type.value;
    form.querySelectorAll("[data-for]").forEach(function (el) { el.hidden = el.dataset.for.split(" ").indexOf(type) < 0; });
  }

  function initCharts(root) {
    (root || document).querySelectorAll(".chart-saved[data-src]:not([data-state])").forEach(function (box) {
      if (box.closest("[hidden]")) { box.dataset.state = "waiting"; return; }
      load(box, box.dataset.src);
    });
    (root || document).querySelectorAll("form.chart-form:not([data-ready])").forEach(function (form) {
      form.dataset.ready = "1";
      syncForm(form);
      form.addEventListener("change", function () { syncForm(form); });
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        load(form.parentElement.querySelector(".chart-box"), form.dataset.src + "?" + query(form));
      });
    });
  }

  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest(".chart-save");
    if (btn && window.htmx) htmx.trigger(btn.form, "save");
  });

  // tabs of an output: Table+profile | Chart
  document.addEventListener("click", function (e) {
    var tab = e.target.closest && e.target.closest(".out-tabs [role=tab]");
    if (!tab) return;
    var wrap = tab.closest(".preview");
    wrap.querySelectorAll(".out-tabs [role=tab]").forEach(function (t) { t.setAttribute("aria-selected", t === tab ? "true" : "false"); });
    wrap.querySelectorAll("[role=tabpanel]").forEach(function (p) { p.hidden = p.id !== tab.getAttribute("aria-controls"); });
    wrap.querySelectorAll(".chart-saved[data-state=waiting]").forEach(function (box) { if (!box.closest("[hidden]")) load(box, box.dataset.src); });
  });

  window.dagsmithCharts = { init: initCharts, draw: draw };
  document.addEventListener("htmx:afterSettle", function () { initCharts(document); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { initCharts(document); }); else initCharts(document);
})();
