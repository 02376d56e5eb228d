// labcoat view: live updates and hover labels. Hand-written, no build step, nothing fetched
// from elsewhere. Everything it inserts is either the server's own escaped HTML (the same page,
// fetched again) or plain text (textContent), never markup made from data.
(function () {
  "use strict";
  var body = document.body;

  // Live: the server says (server-sent events) how many events the log holds; when that is not
  // what this page shows, the page fetches itself again and swaps its <main>, keeping open
  // <details> open. No reload, no scroll jump.
  var busy = false, again = false;

  function openDetails() {
    var open = {};
    document.querySelectorAll("#live details[id]").forEach(function (d) { open[d.id] = d.open; });
    return open;
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.getElementById("live");
    if (!fresh) { return; }
    var open = openDetails();
    fresh.querySelectorAll("details[id]").forEach(function (d) {
      if (d.id in open) { d.open = open[d.id]; }
    });
    document.getElementById("live").replaceWith(document.importNode(fresh, true));
    body.dataset.seen = doc.body.dataset.seen;
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html) { swap(html); } })
      .catch(function () { /* the server went away: the next event retries */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  if (body.dataset.events && window.EventSource) {
    var source = new EventSource(body.dataset.events);
    source.addEventListener("update", function (e) {
      var seen = JSON.parse(e.data).events;
      if (String(seen) !== body.dataset.seen) { refresh(); }
    });
    source.addEventListener("error", function () { body.classList.add("offline"); });
    source.addEventListener("open", function () { body.classList.remove("offline"); });
  }

  // Hover: points of the chart and nodes of the tree name their subtask.
  var tip = document.getElementById("tip");
  document.addEventListener("mouseover", function (e) {
    var el = e.target.closest ? e.target.closest("[data-tip]") : null;
    if (!el || !tip) { if (tip) { tip.hidden = true; } return; }
    tip.textContent = el.getAttribute("data-tip");
    tip.hidden = false;
  });
  document.addEventListener("mousemove", function (e) {
    if (tip && !tip.hidden) {
      tip.style.left = (e.pageX + 14) + "px";
      tip.style.top = (e.pageY + 14) + "px";
    }
  });
})();
