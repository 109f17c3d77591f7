// Keeps a patient's queue standing current on the day: every 20 seconds the visits
// page is fetched again and each queue line (data-queue = the appointment) is
// replaced by the fresh one; it stops once none is still waiting to be called.
(function () {
  "use strict";
  var timer = setInterval(function () {
    var lines = document.querySelectorAll("[data-queue][data-waiting]");
    if (lines.length === 0) { clearInterval(timer); return; }
    fetch("/portal/visits", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = document.createElement("div");
        fresh.innerHTML = html;
        lines.forEach(function (line) {
          var now = fresh.querySelector('[data-queue="' + line.getAttribute("data-queue") + '"]');
          if (!now) return;
          if (now.innerHTML !== line.innerHTML) line.innerHTML = now.innerHTML;
          if (!now.hasAttribute("data-waiting")) line.removeAttribute("data-waiting");
        });
      })
      .catch(function () {});
  }, 20000);
})();
