/* dagsmith UI behaviour: code editors, keyboard shortcuts, DAG panning and cell focus. No framework. */
(function () {
  "use strict";
  var editors = new WeakMap();

  function modeFor(name) {
    return { python: "python", sql: "text/x-sql", yaml: "yaml", shell: "shell", markdown: "markdown" }[name] || null;
  }

  function initEditors(root) {
    if (!window.CodeMirror) return;
    (root || document).querySelectorAll("textarea.code").forEach(function (ta) {
      if (editors.has(ta)) return;
      var cm = CodeMirror.fromTextArea(ta, {
        mode: modeFor(ta.dataset.mode), lineNumbers: true, indentUnit: 4, tabSize: 4, indentWithTabs: false,
        matchBrackets: true, autoCloseBrackets: true, viewportMargin: 20,
        extraKeys: {
          "Ctrl-Enter": function () { runCell(ta); }, "Cmd-Enter": function () { runCell(ta); },
          "Shift-Enter": function () { runCell(ta); },
          "Ctrl-S": function () { saveCell(ta); }, "Cmd-S": function () { saveCell(ta); },
          "Ctrl-/": "toggleComment", "Cmd-/": "toggleComment",
          "Tab": function (cm) { cm.somethingSelected() ? cm.indentSelection("add") : cm.replaceSelection("    "); },
          "Esc": function (cm) { cm.getInputField().blur(); }
        }
      });
      cm.on("change", function () { cm.save(); ta.dispatchEvent(new Event("input", { bubbles: true })); });
      editors.set(ta, cm);
      ta.cmEditor = cm;
    });
  }

  function syncEditors(form) {
    if (!form) return;
    form.querySelectorAll("textarea.code").forEach(function (ta) { if (ta.cmEditor) ta.cmEditor.save(); });
  }

  function runCell(ta) {
    var form = ta.closest("form");
    var btn = form && form.querySelector(".run-btn");
    if (btn) btn.click();
  }

  function saveCell(ta) {
    var form = ta.closest("form");
    var btn = form && form.querySelector(".save-btn");
    if (btn) btn.click();
  }

  // htmx reads form values after this event: make sure CodeMirror has written back
  document.addEventListener("htmx:configRequest", function (evt) {
    var form = evt.detail.elt.closest ? evt.detail.elt.closest("form") : null;
    if (form) {
      syncEditors(form);
      form.querySelectorAll("textarea.code").forEach(function (ta) {
        if (ta.name && evt.detail.parameters && ta.cmEditor && evt.detail.verb !== "get") evt.detail.parameters[ta.name] = ta.cmEditor.getValue();
      });
    }
  });
  document.addEventListener("htmx:afterSettle", function (evt) { initEditors(evt.detail.elt); });
  document.addEventListener("submit", function (evt) { syncEditors(evt.target); }, true);

  // Ctrl/Cmd+S anywhere in a form with a save button (also for plain textareas)
  document.addEventListener("keydown", function (evt) {
    if ((evt.ctrlKey || evt.metaKey) && (evt.key === "s" || evt.key === "S")) {
      var form = document.activeElement && document.activeElement.closest && document.activeElement.closest("form");
      var btn = form && form.querySelector(".save-btn");
      if (btn) { evt.preventDefault(); btn.click(); }
    }
  });

  // "Overwrite with my version" after a conflict
  document.addEventListener("click", function (evt) {
    var t = evt.target;
    if (t.classList && (t.classList.contains("force-save") || t.classList.contains("force-save-file"))) {
      var form = t.classList.contains("force-save") ? document.querySelector('.cell-form[data-block="' + CSS.escape(t.dataset.block) + '"]') : document.querySelector(".file-form");
      if (!form) return;
      var force = document.createElement("input");
      force.type = "hidden"; force.name = "force"; force.value = "1";
      form.appendChild(force);
      form.querySelector(".save-btn").click();
      setTimeout(function () { force.remove(); }, 0);
    }
    if (t.classList && t.classList.contains("copy") && navigator.clipboard) {
      navigator.clipboard.writeText(t.dataset.copy || "").then(function () { t.textContent = "Copied"; });
    }
  });

  // Add-block form: templates follow the chosen type and language
  function syncTemplates() {
    var type = document.getElementById("new-type"), lang = document.getElementById("new-language"), tpl = document.getElementById("new-template");
    if (!type || !tpl) return;
    var sql = lang.value === "sql";
    var choices = JSON.parse((sql ? tpl.dataset.sqlTemplates : tpl.dataset.templates) || "{}")[type.value] || [["generic", "Generic"]];
    var keep = tpl.value;
    tpl.innerHTML = "";
    choices.forEach(function (c) { var o = document.createElement("option"); o.value = c[0]; o.textContent = c[1]; tpl.appendChild(o); });
    if (choices.some(function (c) { return c[0] === keep; })) tpl.value = keep;
    document.querySelectorAll(".sql-only").forEach(function (el) { el.style.display = sql ? "" : "none"; });
    syncProvider();
  }

  // An SQL template named after a connection (postgres, duckdb, bigquery) picks that connection
  function syncProvider() {
    var lang = document.getElementById("new-language"), tpl = document.getElementById("new-template"), provider = document.getElementById("new-provider");
    if (!lang || !tpl || !provider || lang.value !== "sql") return;
    if (Array.prototype.some.call(provider.options, function (o) { return o.value === tpl.value; })) provider.value = tpl.value;
  }

  // Trigger form: cron field only for custom schedules; schedule fields only for schedule triggers
  function syncTriggerForm() {
    var form = document.getElementById("trigger-form");
    if (!form) return;
    var api = form.querySelector('input[name="schedule_type"][value="api"]').checked;
    form.querySelectorAll(".schedule-only").forEach(function (el) { el.style.display = api ? "none" : ""; });
    var preset = form.querySelector("#preset"), cron = form.querySelector("#cron");
    cron.closest("label").style.display = preset.value === "custom" ? "" : "none";
  }

  // DAG panel: drag to pan, click a node to jump to its cell, highlight the current cell
  function initDag() {
    var box = document.getElementById("dag-scroll");
    if (!box) return;
    var down = null, moved = 0;
    box.addEventListener("mousedown", function (e) {
      if (e.button !== 0) return;
      down = { x: e.clientX, y: e.clientY, l: box.scrollLeft, t: box.scrollTop };
      moved = 0;
      e.preventDefault();
    });
    window.addEventListener("mousemove", function (e) {
      if (!down) return;
      moved = Math.max(moved, Math.abs(e.clientX - down.x) + Math.abs(e.clientY - down.y));
      if (moved > 3) box.classList.add("panning");
      box.scrollLeft = down.l - (e.clientX - down.x);
      box.scrollTop = down.t - (e.clientY - down.y);
    });
    window.addEventListener("mouseup", function () { down = null; box.classList.remove("panning"); });
    box.addEventListener("click", function (e) {
      var a = e.target.closest("a.node");
      if (!a) return;
      e.preventDefault();
      if (moved > 3) { moved = 0; return; }  // the end of a drag, not a click
      var cell = document.getElementById("block-" + a.dataset.block);
      if (cell) {
        cell.scrollIntoView({ block: "start" });
        history.replaceState(null, "", "#block-" + a.dataset.block);
        markCurrent(a.dataset.block);
      }
    });
  }

  function markCurrent(uuid) {
    document.querySelectorAll(".current").forEach(function (el) { el.classList.remove("current"); });
    var node = document.querySelector('svg.dag a.node[data-block="' + CSS.escape(uuid) + '"]');
    if (node) node.classList.add("current");
  }

  function start() {
    initEditors(document);
    syncTemplates();
    syncTriggerForm();
    initDag();
    ["new-type", "new-language"].forEach(function (id) { var el = document.getElementById(id); if (el) el.addEventListener("change", syncTemplates); });
    var newTemplate = document.getElementById("new-template");
    if (newTemplate) newTemplate.addEventListener("change", syncProvider);
    var tf = document.getElementById("trigger-form");
    if (tf) tf.addEventListener("change", syncTriggerForm);
    if (location.hash.indexOf("#block-") === 0) {
      var cell = document.getElementById(location.hash.slice(1));
      if (cell) { cell.scrollIntoView({ block: "start" }); markCurrent(location.hash.slice(7)); }
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
