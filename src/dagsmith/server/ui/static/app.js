/* dagsmith UI behaviour: code editors, keyboard shortcuts, unsaved-edit markers, live block output,
   log boxes that follow their tail, the "connection lost" banner, DAG panning and cell focus. No framework. */
(function () {
  "use strict";
  var editors = new WeakMap();

  function modeFor(name) {
    return { python: "python", sql: "text/x-sql", yaml: "yaml", shell: "shell", markdown: "markdown" }[name] || null;
  }

  // ------------------------------------------------------------ code editors

  function initEditors(root) {
    if (!window.CodeMirror) return;
    (root || document).querySelectorAll("textarea.code").forEach(function (ta) {
      if (editors.has(ta) || !ta.isConnected) return;
      var lines = ta.value.split("\n").length;
      var cm = CodeMirror.fromTextArea(ta, {
        mode: modeFor(ta.dataset.mode), lineNumbers: true, indentUnit: 4, tabSize: 4, indentWithTabs: false,
        matchBrackets: true, autoCloseBrackets: true,
        // the editor grows with its content (CSS bounds it); render it all unless it is huge
        viewportMargin: lines < 1500 ? Infinity : 30,
        extraKeys: {
          "Ctrl-Enter": function () { runCell(ta); }, "Cmd-Enter": function () { runCell(ta); },
          "Shift-Enter": function () { runCell(ta); },
          "Ctrl-S": function () { saveCell(ta); }, "Cmd-S": function () { saveCell(ta); },
          "Ctrl-/": "toggleComment", "Cmd-/": "toggleComment",
          "Tab": function (cm) { cm.somethingSelected() ? cm.indentSelection("add") : cm.replaceSelection("    "); },
          "Esc": function (cm) { cm.getInputField().blur(); }
        }
      });
      ta.dataset.clean = cm.getValue();
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

  var lastSave = new WeakMap();
  function saveCell(ta) {
    var form = ta.closest("form");
    var btn = form && form.querySelector(".save-btn");
    if (!btn) return;
    var now = Date.now();
    if (now - (lastSave.get(btn) || 0) < 300) return;  // one key press, one save
    lastSave.set(btn, now);
    btn.click();
  }

  // ------------------------------------------------------------ unsaved edits

  function markDirty(form, dirty) {
    var cell = form.closest(".cell") || form.closest(".file-editor") || form;
    cell.classList.toggle("dirty", dirty);
    var marker = cell.querySelector(".dirty-mark");
    if (marker) marker.hidden = !dirty;
    updateTitle();
  }

  function isDirty(form) {
    var dirty = false;
    form.querySelectorAll("textarea.code").forEach(function (ta) {
      var v = ta.cmEditor ? ta.cmEditor.getValue() : ta.value;
      if (ta.dataset.clean !== undefined && v !== ta.dataset.clean) dirty = true;
    });
    if (form.dataset.changed === "1") dirty = true;
    return dirty;
  }

  function markClean(form) {
    form.querySelectorAll("textarea.code").forEach(function (ta) { ta.dataset.clean = ta.cmEditor ? ta.cmEditor.getValue() : ta.value; });
    delete form.dataset.changed;
    markDirty(form, false);
  }

  function dirtyCount() { return document.querySelectorAll(".dirty").length; }

  var baseTitle = document.title;
  function updateTitle() { document.title = (dirtyCount() ? "● " : "") + baseTitle; }

  document.addEventListener("input", function (evt) {
    var form = evt.target.closest && evt.target.closest("form.cell-form, form.file-form, form.sql-config, form.track-changes");
    if (!form) return;
    if (!evt.target.classList.contains("code")) form.dataset.changed = "1";
    markDirty(form, isDirty(form));
    // a message about the last save no longer describes what is on screen
    var status = form.querySelector(".save-status, .sql-status, .form-status") || (form.classList.contains("cell-form") && form.closest(".cell").querySelector(".save-status"));
    if (status && status.querySelector(".ok")) status.innerHTML = "";
  });
  document.addEventListener("change", function (evt) {
    var form = evt.target.closest && evt.target.closest("form.sql-config, form.track-changes");
    if (form) { form.dataset.changed = "1"; markDirty(form, true); var st = form.querySelector(".sql-status, .form-status"); if (st) st.innerHTML = ""; }
  });

  window.addEventListener("beforeunload", function (evt) {
    if (!dirtyCount() || window.dagsmithLeaving) return;
    evt.preventDefault();
    evt.returnValue = "";  // the browser asks "Leave site? Changes you made may not be saved."
  });
  // a form that submits normally (a full page load) takes its own changes with it
  document.addEventListener("submit", function (evt) {
    syncEditors(evt.target);
    if (!evt.target.hasAttribute("hx-post") && !evt.target.hasAttribute("hx-get")) {
      evt.target.classList.remove("dirty");
      if (evt.target.closest(".dirty") === null && dirtyCount() === 0) window.dagsmithLeaving = true;
    }
  }, true);

  // ------------------------------------------------------------ htmx glue

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
  // a successful save or run (which saves) makes the cell clean; saved SQL settings too
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt, xhr = evt.detail.xhr;
    if (!xhr || xhr.status >= 300) return;
    var form = elt.closest ? elt.closest("form") : null;
    if (elt.classList && elt.classList.contains("save-btn")) form = elt.closest("form");
    if (!form) return;
    if (form.classList.contains("cell-form") || form.classList.contains("file-form")) {
      markClean(form);
      var sql = form.parentElement.querySelector("form.sql-config");
      if (sql && evt.detail.requestConfig && evt.detail.requestConfig.path && /\/run$/.test(evt.detail.requestConfig.path)) markClean(sql);
    } else if (form.classList.contains("sql-config") || form.classList.contains("track-changes")) {
      markClean(form);
    }
  });
  document.addEventListener("htmx:sendError", function () { connection(false); });
  document.addEventListener("htmx:afterSettle", function (evt) {
    initEditors(evt.detail.elt);
    followJobs();
    keepPinned();
  });

  // ------------------------------------------------------------ keyboard

  // Ctrl/Cmd+S anywhere in a form with a save button (plain textareas and inputs; CodeMirror has its own key map)
  document.addEventListener("keydown", function (evt) {
    if ((evt.ctrlKey || evt.metaKey) && (evt.key === "s" || evt.key === "S")) {
      if (evt.defaultPrevented || (evt.target.closest && evt.target.closest(".CodeMirror"))) { evt.preventDefault(); return; }
      var form = document.activeElement && document.activeElement.closest && document.activeElement.closest("form");
      var btn = form && (form.querySelector(".save-btn") || form.querySelector(".save-sql"));
      if (btn) { evt.preventDefault(); var ta = form.querySelector("textarea.code"); if (ta && btn.classList.contains("save-btn")) saveCell(ta); else btn.click(); }
    }
  });

  // ------------------------------------------------------------ clicks

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
      navigator.clipboard.writeText(t.dataset.copy || "").then(function () { var old = t.textContent; t.textContent = "Copied"; setTimeout(function () { t.textContent = old; }, 1500); });
    }
    var again = t.closest && t.closest(".run-again");
    if (again) {
      var cf = document.querySelector('.cell-form[data-block="' + CSS.escape(again.dataset.block) + '"]');
      var mode = again.dataset.mode || "block";
      var btn = cf && (mode === "upstream" ? cf.querySelector(".run-up-btn") : mode === "downstream" ? cf.querySelector(".run-down-btn") : cf.querySelector(".run-btn"));
      if (btn) btn.click();
    }
  });

  // ------------------------------------------------------------ live block output

  var following = {};

  function fmtSecs(s) {
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 120) return s.toFixed(1) + " s";
    var m = Math.floor(s / 60);
    return m + " min " + Math.floor(s % 60) + " s";
  }

  function atBottom(el) { return el.scrollHeight - el.scrollTop - el.clientHeight < 8; }

  function setDagStatus(blocks) {
    Object.keys(blocks || {}).forEach(function (uuid) {
      var node = document.querySelector('svg.dag a.node[data-block="' + CSS.escape(uuid) + '"]');
      if (!node) return;
      node.setAttribute("class", node.getAttribute("class").replace(/\s*st-\S+/g, "") + " st-" + blocks[uuid]);
      node.dataset.status = blocks[uuid];
    });
  }

  function replaceOutput(el, html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    var fresh = tpl.content.firstElementChild;
    if (!fresh) return;
    var rest = Array.prototype.slice.call(tpl.content.children, 1);
    // a reader who scrolled the running output up keeps it: the box they read (the same lines) moves
    // into the finished output in place of the printed-output box, at the same scroll position
    var live = el.querySelector("pre.stdout.live"), kept = null;
    var printed = fresh.querySelector(":scope > pre.stdout[data-printed]");
    if (live && printed && live.parentElement.classList.contains("logbox") && !atBottom(live)) {
      kept = { pre: live, top: live.scrollTop };
      live.classList.remove("live");
      printed.replaceWith(live.parentElement);
    }
    el.replaceWith(fresh);
    rest.forEach(function (extra) {  // out-of-band pieces (the file hash)
      if (extra.id && document.getElementById(extra.id)) document.getElementById(extra.id).replaceWith(extra);
    });
    if (window.htmx) htmx.process(fresh);
    if (window.dagsmithCharts) window.dagsmithCharts.init(fresh);
    fresh.querySelectorAll("pre.stdout").forEach(function (pre) { if (!kept || pre !== kept.pre) pre.scrollTop = pre.scrollHeight; });
    if (kept) kept.pre.scrollTop = kept.top;
  }

  function follow(el) {
    var id = el.dataset.job;
    if (following[id]) return;
    following[id] = true;
    var url = el.dataset.poll, since = +el.dataset.since || 0;
    var block = (el.id || "").replace(/^out-/, "");
    var pre = el.querySelector("pre.stdout.live");
    var elapsed = el.querySelector(".elapsed");
    var t0 = performance.now() - (+el.dataset.seconds || 0) * 1000;
    if (pre) pre.scrollTop = pre.scrollHeight;
    var tick = setInterval(function () {
      if (!el.isConnected) { clearInterval(tick); return; }
      if (elapsed) elapsed.textContent = fmtSecs((performance.now() - t0) / 1000);
    }, 100);
    var failures = 0, events = 0;
    function step() {
      if (!el.isConnected) { clearInterval(tick); delete following[id]; return; }
      fetch(url + "?since=" + since + "&events=" + events + "&wait=10&block=" + encodeURIComponent(block), { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (s) {
          failures = 0;
          connection(true);
          if (s.lines && s.lines.length && pre) {
            var follow = atBottom(pre);
            // appended below what is shown: the lines (and any text selection) above stay as they are
            pre.appendChild(document.createTextNode((pre.textContent ? "\n" : "") + s.lines.join("\n")));
            if (follow) pre.scrollTop = pre.scrollHeight; else noteNewLines(pre, s.lines.length);
          }
          since = s.next;
          if (s.block_events != null) events = s.block_events;
          t0 = performance.now() - s.seconds * 1000;
          setDagStatus(s.blocks);
          if (s.done) {
            var mine = {};
            mine[block] = s.status === "lost" ? "interrupted" : s.status;
            setDagStatus(mine);
            clearInterval(tick);
            delete following[id];
            if (s.html) replaceOutput(el, s.html);
            return;
          }
          step();
        })
        .catch(function () {
          failures += 1;
          connection(false);
          setTimeout(step, Math.min(5000, 250 * failures));
        });
    }
    step();
  }

  function followJobs() {
    document.querySelectorAll(".output.running[data-job][data-poll]").forEach(follow);
  }

  // ------------------------------------------------------------ connection banner

  var lost = false, pinger = null;
  function connection(ok) {
    var banner = document.getElementById("conn-banner");
    if (!banner) return;
    if (ok && lost) { lost = false; banner.hidden = true; document.body.classList.remove("offline"); if (pinger) { clearInterval(pinger); pinger = null; } }
    if (!ok && !lost) {
      lost = true; banner.hidden = false; document.body.classList.add("offline");
      pinger = setInterval(ping, 1000);
    }
  }
  function ping() {
    fetch("/ui/ping", { cache: "no-store", credentials: "same-origin" }).then(function (r) { if (r.status < 500) connection(true); }).catch(function () { connection(false); });
  }
  // a page left open notices a stopped server within a few seconds, even with nothing running
  setInterval(function () { if (!lost && document.visibilityState === "visible") ping(); }, 5000);

  // ------------------------------------------------------------ log boxes: follow the tail at the bottom, stay put above it

  // A log box (pre[data-follow]: the run page's logs, a running block's output) only ever gets lines
  // appended below the ones it shows. At its bottom it follows them; scrolled up, the lines the reader
  // looks at stay where they are, and a "N new lines below" button (.log-latest, in the box's .logbox)
  // counts what came since, until the reader is back at the bottom or clicks it.

  function latestButton(pre) {
    var box = pre.parentElement;
    return box && box.classList.contains("logbox") ? box.querySelector(".log-latest") : null;
  }
  function noteNewLines(pre, n) {
    var btn = latestButton(pre);
    if (!btn || n <= 0) return;
    var total = (+btn.dataset.count || 0) + n;
    btn.dataset.count = total;
    btn.textContent = total + " new line" + (total === 1 ? "" : "s") + " below · jump to latest ↓";
    btn.hidden = false;
  }
  function caughtUp(pre) {
    var btn = latestButton(pre);
    if (btn && !btn.hidden) { btn.hidden = true; btn.dataset.count = 0; }
  }
  function logRecords(pre) { return pre.querySelectorAll(":scope > span:not(.log-empty)").length; }
  // a box that follows its tail keeps its last data-keep records (the reader is at the bottom: nothing they see moves)
  function trimLog(pre) {
    var keep = +pre.dataset.keep || 0;
    if (!keep) return;
    for (var extra = pre.children.length - keep; extra > 0; extra--) pre.firstElementChild.remove();
  }
  document.addEventListener("scroll", function (evt) {
    var pre = evt.target;
    if (pre && pre.matches && pre.matches("pre[data-follow]") && atBottom(pre)) caughtUp(pre);
  }, true);
  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest && evt.target.closest(".log-latest");
    var pre = btn && btn.parentElement.querySelector("pre[data-follow]");
    if (!pre) return;
    pre.scrollTop = pre.scrollHeight;
    caughtUp(pre);
  });

  // The run page's refresh (#run-live, htmx every 1 s) asks for the records after the box's last one
  // (data-next, a byte offset in the log) and appends them to the box out of band (runs.py).
  document.addEventListener("htmx:configRequest", function (evt) {
    var logs = evt.detail.elt && evt.detail.elt.id === "run-live" && document.getElementById("logs");
    if (logs && logs.dataset.next != null) evt.detail.parameters.after = logs.dataset.next;
  });
  // Around every htmx swap: a log box keeps the reader's place or follows its tail; other panels that
  // a swap re-creates (data-keep-scroll with an id: the run page's graph) keep their scroll position.
  var scrolls = null;
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr, logs = document.getElementById("logs");
    var next = xhr && evt.detail.elt && evt.detail.elt.id === "run-live" ? xhr.getResponseHeader("X-Log-Next") : null;
    if (logs && next !== null && evt.detail.shouldSwap) logs.dataset.next = next;
    scrolls = [];
    document.querySelectorAll("pre[data-follow], [data-keep-scroll][id]").forEach(function (el) {
      scrolls.push({ el: el, id: el.id, bottom: atBottom(el), top: el.scrollTop, left: el.scrollLeft, records: logRecords(el) });
    });
  });
  document.addEventListener("htmx:afterSwap", function () {
    var states = scrolls;
    scrolls = null;
    (states || []).forEach(function (st) {
      var el = st.el.isConnected ? st.el : st.id && document.getElementById(st.id);
      if (!el) return;
      if (!el.matches("pre[data-follow]")) { el.scrollTop = st.top; el.scrollLeft = st.left; return; }
      if (st.bottom) { trimLog(el); el.scrollTop = el.scrollHeight; caughtUp(el); return; }
      el.scrollTop = st.top;
      if (el === st.el) noteNewLines(el, logRecords(el) - st.records);
    });
  });

  // ------------------------------------------------------------ menus stay inside the window (800 px wide too)

  function placeMenu(details) {
    var body = details.querySelector(".menu-body");
    if (!body || !details.open) return;
    body.style.left = ""; body.style.right = "";
    var rect = body.getBoundingClientRect(), room = document.documentElement.clientWidth - 8;
    if (rect.right > room) body.style.left = (body.offsetLeft - (rect.right - room)) + "px";
    rect = body.getBoundingClientRect();
    if (rect.left < 8) body.style.left = (body.offsetLeft + (8 - rect.left)) + "px";
  }
  document.addEventListener("toggle", function (evt) {
    if (evt.target.matches && evt.target.matches("details.menu")) placeMenu(evt.target);
    // an editor created while hidden measures itself when it appears
    if (evt.target.open && evt.target.querySelectorAll) evt.target.querySelectorAll("textarea.code").forEach(function (ta) { if (ta.cmEditor) ta.cmEditor.refresh(); });
  }, true);
  window.addEventListener("resize", function () { document.querySelectorAll("details.menu[open]").forEach(placeMenu); });

  // ------------------------------------------------------------ forms

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
    syncUpstream();
  }

  // a new loader starts a branch (no upstream); other blocks follow the last block unless the user chose
  var upstreamTouched = false;
  function syncUpstream() {
    var type = document.getElementById("new-type"), ups = document.getElementById("new-upstream");
    if (!type || !ups || upstreamTouched) return;
    var loader = type.value === "data_loader";
    Array.prototype.forEach.call(ups.options, function (o, i) { o.selected = !loader && i === ups.options.length - 1; });
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

  // ------------------------------------------------------------ markdown cells: a small, safe renderer

  function esc(t) { return t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;"); }
  function inline(t) {
    return esc(t)
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*])\*([^*]+)\*/g, "$1<em>$2</em>")
      .replace(/\[([^\]]+)\]\(((?:https?:\/\/|\/)[^)\s]*)\)/g, '<a href="$2" rel="noopener noreferrer">$1</a>');
  }
  function renderMarkdown(text) {
    var out = [], list = null, para = [], code = null;
    function flush() {
      if (para.length) { out.push("<p>" + inline(para.join(" ")) + "</p>"); para = []; }
      if (list) { out.push("<ul>" + list.map(function (i) { return "<li>" + inline(i) + "</li>"; }).join("") + "</ul>"); list = null; }
    }
    text.split("\n").forEach(function (line) {
      if (code !== null) { if (/^```/.test(line)) { out.push("<pre>" + esc(code.join("\n")) + "</pre>"); code = null; } else code.push(line); return; }
      if (/^```/.test(line)) { flush(); code = []; return; }
      var h = line.match(/^(#{1,4})\s+(.*)$/);
      if (h) { flush(); var n = Math.min(h[1].length + 2, 6); out.push("<h" + n + ">" + inline(h[2]) + "</h" + n + ">"); return; }
      var li = line.match(/^\s*[-*]\s+(.*)$/);
      if (li) { if (para.length) flush(); (list = list || []).push(li[1]); return; }
      if (!line.trim()) { flush(); return; }
      if (list) flush();
      para.push(line.trim());
    });
    if (code !== null) out.push("<pre>" + esc(code.join("\n")) + "</pre>");
    flush();
    return out.join("");
  }
  function renderNotes(root) {
    (root || document).querySelectorAll(".markdown-view[data-markdown-for]").forEach(function (view) {
      var ta = document.getElementById(view.dataset.markdownFor);
      if (ta) view.innerHTML = renderMarkdown(ta.cmEditor ? ta.cmEditor.getValue() : ta.value);
    });
  }
  document.addEventListener("htmx:afterSettle", function () { renderNotes(document); });
  document.addEventListener("input", function (evt) {
    var cell = evt.target.closest && evt.target.closest(".cell.t-markdown");
    if (cell) renderNotes(cell);
  });

  // ------------------------------------------------------------ side panel: graph | files; drag a block file in

  document.addEventListener("click", function (evt) {
    var tab = evt.target.closest && evt.target.closest(".side-tabs [role=tab]");
    if (tab) {
      document.querySelectorAll(".side-tabs [role=tab]").forEach(function (t) { t.setAttribute("aria-selected", t === tab ? "true" : "false"); });
      var graph = document.getElementById("dag-scroll"), files = document.getElementById("side-files");
      var showFiles = tab.id === "tab-files";
      if (graph) graph.hidden = showFiles;
      if (files) files.hidden = !showFiles;
      return;
    }
    var rename = evt.target.closest && evt.target.closest(".rename-file");
    if (rename) {
      var to = window.prompt("Rename " + rename.dataset.path + " to:", rename.dataset.path);
      if (!to || to === rename.dataset.path) return;
      var form = document.getElementById("rename-file-form");
      form.elements.path.value = rename.dataset.path;
      form.elements.new_path.value = to;
      window.dagsmithLeaving = dirtyCount() === 0;
      form.submit();
      return;
    }
    if (evt.target.closest && evt.target.closest(".close-file")) {
      var panel = document.getElementById("file-panel");
      var form2 = panel && panel.querySelector("form");
      if (form2 && isDirty(form2) && !window.confirm("Close the file without saving your changes?")) return;
      panel.innerHTML = "";
      updateTitle();
    }
  });

  function dropTarget() { return document.getElementById("cells"); }
  document.addEventListener("dragstart", function (evt) {
    var li = evt.target.closest && evt.target.closest("li[data-block-file]");
    if (!li) return;
    evt.dataTransfer.setData("application/x-dagsmith-block", JSON.stringify({ path: li.dataset.blockFile, type: li.dataset.blockType }));
    evt.dataTransfer.effectAllowed = "copy";
    var cells = dropTarget();
    if (cells) { cells.classList.add("drop-target"); var hint = cells.querySelector(".drop-hint"); if (hint) hint.hidden = false; }
  });
  document.addEventListener("dragend", function () {
    var cells = dropTarget();
    if (cells) { cells.classList.remove("drop-target"); var hint = cells.querySelector(".drop-hint"); if (hint) hint.hidden = true; }
  });
  document.addEventListener("dragover", function (evt) {
    if (evt.target.closest && evt.target.closest("#cells") && Array.prototype.indexOf.call(evt.dataTransfer.types, "application/x-dagsmith-block") >= 0) {
      evt.preventDefault();
      evt.dataTransfer.dropEffect = "copy";
    }
  });
  document.addEventListener("drop", function (evt) {
    var cells = evt.target.closest && evt.target.closest("#cells");
    var raw = evt.dataTransfer && evt.dataTransfer.getData("application/x-dagsmith-block");
    if (!cells || !raw) return;
    evt.preventDefault();
    var info = JSON.parse(raw);
    var form = document.getElementById("drop-block-form");
    if (!form) return;
    form.elements.existing.value = info.path;
    // as for a new block: a loader starts a branch, anything else follows the last block
    form.elements.upstream.value = info.type === "data_loader" ? "" : (cells.dataset.lastBlock || "");
    window.dagsmithLeaving = dirtyCount() === 0;
    form.submit();
  });

  // ------------------------------------------------------------ DAG and cell focus

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
      goToBlock(a.dataset.block);
    });
  }

  function markCurrent(uuid) {
    document.querySelectorAll(".current").forEach(function (el) { el.classList.remove("current"); });
    var node = document.querySelector('svg.dag a.node[data-block="' + CSS.escape(uuid) + '"]');
    if (node) node.classList.add("current");
    var cell = document.getElementById("block-" + uuid);
    if (cell) cell.classList.add("current");
  }

  // #block-x stays on its cell while the cells above it load and grow, until the reader scrolls
  var pinned = null;
  function goToBlock(uuid) {
    var cell = document.getElementById("block-" + uuid);
    if (!cell) return;
    pinned = cell;
    cell.scrollIntoView({ block: "start" });
    if (location.hash !== "#block-" + uuid) history.replaceState(null, "", "#block-" + uuid);
    markCurrent(uuid);
    setTimeout(function () { if (pinned === cell) pinned = null; }, 8000);
  }
  function keepPinned() {
    if (pinned && pinned.isConnected) pinned.scrollIntoView({ block: "start" });
  }
  ["wheel", "touchstart", "keydown", "mousedown"].forEach(function (name) {
    document.addEventListener(name, function (e) {
      if (name === "mousedown" && e.target.closest && e.target.closest("svg.dag")) return;
      pinned = null;
    }, { passive: true, capture: true });
  });
  window.addEventListener("hashchange", function () {
    if (location.hash.indexOf("#block-") === 0) goToBlock(decodeURIComponent(location.hash.slice(7)));
  });
  function observeCells() {
    var cells = document.getElementById("cells");
    if (!cells || !window.ResizeObserver) return;
    var ro = new ResizeObserver(function () { keepPinned(); });
    Array.prototype.forEach.call(cells.children, function (c) { ro.observe(c); });
  }

  // ------------------------------------------------------------ dagsmith dev's runs (engine.devfeed)

  // The feed is re-rendered whenever the dev run moves on: its boxes (a block's printed output, a
  // preview table) keep the reader's scroll position, or stay at the bottom of output they followed.
  function boxKey(el, seen) {
    var block = el.closest("[data-block]");
    var key = (block ? block.dataset.block : "") + "|" + el.tagName + "." + el.className;
    seen[key] = (seen[key] || 0) + 1;
    return key + "|" + seen[key];
  }
  function feedScrolls(feed) {
    var saved = {}, seen = {};
    feed.querySelectorAll("pre, .table-scroll").forEach(function (el) {
      saved[boxKey(el, seen)] = { top: el.scrollTop, left: el.scrollLeft, bottom: atBottom(el) };
    });
    return saved;
  }
  function restoreFeedScrolls(feed, saved) {
    var seen = {};
    feed.querySelectorAll("pre, .table-scroll").forEach(function (el) {
      var st = saved[boxKey(el, seen)], output = el.matches("pre.stdout");
      if (!st) { if (output) el.scrollTop = el.scrollHeight; return; }  // new output opens at its end, as on page load
      el.scrollTop = st.bottom && output ? el.scrollHeight : st.top;
      el.scrollLeft = st.left;
    });
  }

  function followDevFeed() {
    if (!document.getElementById("dev-feed")) return;
    var busy = false;
    setInterval(function () {
      var el = document.getElementById("dev-feed");
      if (!el || busy || document.hidden) return;
      busy = true;
      // a failed poll (server restarting) is quiet: the connection banner already says so
      fetch(el.dataset.url + "?seq=" + encodeURIComponent(el.dataset.seq || "0"), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.status === 200 ? r.text() : null; })
        .then(function (html) {
          var cur = document.getElementById("dev-feed");
          if (!html || !cur) return;
          var saved = feedScrolls(cur);
          cur.outerHTML = html;
          var fresh = document.getElementById("dev-feed");
          if (fresh) restoreFeedScrolls(fresh, saved);
        })
        .catch(function () {})
        .then(function () { busy = false; });
    }, 1000);
  }

  function start() {
    followDevFeed();
    initEditors(document);
    syncTemplates();
    syncTriggerForm();
    initDag();
    observeCells();
    followJobs();
    ["new-type", "new-language"].forEach(function (id) { var el = document.getElementById(id); if (el) el.addEventListener("change", syncTemplates); });
    var ups = document.getElementById("new-upstream");
    if (ups) ups.addEventListener("change", function () { upstreamTouched = true; });
    var newTemplate = document.getElementById("new-template");
    if (newTemplate) newTemplate.addEventListener("change", syncProvider);
    var tf = document.getElementById("trigger-form");
    if (tf) tf.addEventListener("change", syncTriggerForm);
    if (location.hash.indexOf("#block-") === 0) goToBlock(decodeURIComponent(location.hash.slice(7)));
    document.querySelectorAll("details.menu[open]").forEach(placeMenu);
    document.querySelectorAll("pre.logs[data-follow], pre.stdout").forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
