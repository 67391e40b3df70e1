// Live overview: rows follow a Server-Sent Events stream fed by a Kubernetes watch. Every value is set with
// textContent (never innerHTML): checkpoint strings and messages come from the cluster.
"use strict";
(function () {
  var live = document.body.getAttribute("data-live");
  var table = document.getElementById("rollouts");
  if (!live || !table || !window.EventSource) return;
  var tbody = table.tBodies[0];
  var state = document.getElementById("live-state");

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
  function code(text) { return el("code", null, text); }
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
    tr.appendChild(cell("stable", code(row.stable)));
    tr.appendChild(cell("candidate", code(row.candidate)));
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
  var source = new EventSource(live);
  source.onopen = function () { state.textContent = "live updates: on"; state.className = "live on"; };
  source.onerror = function () { state.textContent = "live updates: reconnecting…"; state.className = "live off"; };
  source.onmessage = function (ev) {
    var msg = JSON.parse(ev.data);
    if (msg.type === "ERROR") { state.textContent = "live updates: " + msg.message; state.className = "live off"; return; }
    if (msg.type === "DELETED") {
      var gone = document.getElementById("row-" + msg.key);
      if (gone) gone.remove();
      return;
    }
    upsert(msg.row);
    document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates") || 0) + 1));
  };
})();
