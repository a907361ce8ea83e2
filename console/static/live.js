// radgate console: live order states over server-sent events
// (/console/events). No library, no inline script (CSP default-src 'self').
// Pages work without it; with it, the state of every order on the page
// (elements with data-order, their [data-state] child) follows the
// pipeline, and a note offers a reload when there is more to see.
(function () {
  "use strict";
  if (!window.EventSource || !document.querySelector) return;
  var live = document.querySelector("[data-live]");
  if (!live) return;
  var only = live.getAttribute("data-live");
  var url = "/console/events" + (only ? "?order=" + encodeURIComponent(only) : "");
  var note = null;

  function say(text) {
    if (!note) {
      note = document.createElement("p");
      note.className = "live";
      note.setAttribute("role", "status");
      var main = document.getElementById("main");
      main.insertBefore(note, main.firstChild);
    }
    note.textContent = text + " ";
    var a = document.createElement("a");
    a.href = window.location.href;
    a.textContent = "Reload";
    note.appendChild(a);
  }

  function rowsOf(id) {
    var out = [];
    var all = document.querySelectorAll("[data-order]");
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute("data-order") === id) out.push(all[i]);
    }
    return out;
  }

  var src = new EventSource(url);
  src.addEventListener("order", function (e) {
    var c;
    try { c = JSON.parse(e.data); } catch (err) { return; }
    if (!c || typeof c.order !== "string" || typeof c.state !== "string") return;
    var rows = rowsOf(c.order);
    if (rows.length === 0) {
      if (!only && c.state === "received") say("New orders have arrived.");
      return;
    }
    rows.forEach(function (row) {
      var s = row.querySelector("[data-state]");
      if (s && s.textContent !== c.state) {
        s.textContent = c.state;
        s.className = "state state-" + c.state.replace(/[^a-z-]/g, "");
        if (row.tagName === "TR") {
          row.classList.add("changed");
        }
      }
    });
    if (only) say("This order is now " + c.state + ".");
  });
})();
