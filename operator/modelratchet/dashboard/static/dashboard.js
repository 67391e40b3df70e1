// Live updates over Server-Sent Events fed by a Kubernetes watch. The overview's rows are built with
// textContent (never innerHTML): checkpoint strings and messages come from the cluster. A rollout page
// reloads its content (escaped by the server) when the object moves past the version it shows.
"use strict";
(function () {
  var live = document.body.getAttribute("data-live");
  if (!live || !window.EventSource) return;
  function say(text, on) {
    var state = document.getElementById("live-state"); // a refreshed rollout page brings a new one
    if (!state) return;
    state.textContent = "live updates: " + text;
    state.className = on ? "live on" : "live off";
  }
  function count(attr) {
    document.body.setAttribute(attr, String(Number(document.body.getAttribute(attr) || 0) + 1));
  }
  var source = new EventSource(live);
  source.onopen = function () { say("on", true); };
  source.onerror = function () { say("reconnecting…", false); };

  if (document.body.hasAttribute("data-version")) {
    var busy = false, again = false;
    var refresh = function () {
      if (busy) { again = true; return; }
      busy = true;
      fetch(document.body.getAttribute("data-href"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error(String(r.status))); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.querySelector("main");
          if (!fresh) return;
          var notice = document.getElementById("notice");
          document.querySelector("main").replaceWith(document.adoptNode(fresh));
          var h1 = document.querySelector("main h1");
          if (notice && h1) h1.after(notice); // the answer to the user's action stays until they leave
          document.body.setAttribute("data-version", doc.body.getAttribute("data-version") || "");
          say("on", true);
          count("data-refreshes");
        })
        .catch(function (err) { say("refresh failed (" + err.message + ")", false); })
        .finally(function () { busy = false; if (again) { again = false; refresh(); } });
    };
    source.onmessage = function (ev) {
      var msg = JSON.parse(ev.data);
      if (msg.type === "ERROR") { say(msg.message, false); return; }
      if (msg.version && msg.version !== document.body.getAttribute("data-version")) refresh();
    };
    return;
  }

  var table = document.getElementById("rollouts");
  if (!table) return;
  var tbody = table.tBodies[0];
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }
  function cell(field, child) {
    var td = el("td");
    if (field) td.setAttribute("data-field", field);
    if (child) td.appendChild(child);
    return td;
  }
  function render(row) {
    var tr = el("tr");
    tr.id = "row-" + row.key;
    tr.setAttribute("data-key", row.key);
    var a = el("a", null, row.namespace + "/" + row.name);
    a.href = "/rollouts/" + encodeURIComponent(row.namespace) + "/" + encodeURIComponent(row.name);
    tr.appendChild(cell(null, a));
    tr.appendChild(cell("phase", el("span", "phase phase-" + row.phase.toLowerCase(), row.phase)));
    var step = cell("step");
    if (row.step_fraction !== null) {
      var p = el("progress");
      p.max = 100;
      p.value = Math.round(Math.max(0, Math.min(row.step_fraction, 1)) * 100);
      step.appendChild(p);
      step.appendChild(document.createTextNode(" "));
    }
    step.appendChild(document.createTextNode(row.step));
    tr.appendChild(step);
    tr.appendChild(cell("weight", document.createTextNode(row.weight === null ? "-" : row.weight + "%")));
    tr.appendChild(cell("stable", el("code", null, row.stable)));
    tr.appendChild(cell("candidate", el("code", null, row.candidate)));
    tr.appendChild(cell("last_verdict", el("span", "verdict verdict-" + row.last_verdict, row.last_verdict)));
    tr.appendChild(cell("age", document.createTextNode(row.age)));
    return tr;
  }
  function upsert(row) {
    var fresh = render(row);
    var old = document.getElementById(fresh.id);
    if (old) { tbody.replaceChild(fresh, old); return; }
    var rows = tbody.rows, i = 0;
    while (i < rows.length && rows[i].getAttribute("data-key") < row.key) i++;
    tbody.insertBefore(fresh, rows[i] || null);
    var empty = document.getElementById("empty");
    if (empty) empty.remove();
  }
  source.onmessage = function (ev) {
    var msg = JSON.parse(ev.data);
    if (msg.type === "ERROR") { say(msg.message, false); return; }
    if (msg.type === "DELETED") {
      var gone = document.getElementById("row-" + msg.key);
      if (gone) gone.remove();
      return;
    }
    upsert(msg.row);
    count("data-updates");
  };
})();
