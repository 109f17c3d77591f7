// Keeps the critical-value bar of every open page current: every 5 seconds the
// server's /alerts fragment replaces the bar (a field being typed in is left alone).
(function () {
  "use strict";
  function refresh() {
    var bar = document.getElementById("critical-alerts");
    if (!bar || bar.contains(document.activeElement)) return;
    fetch("/alerts", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var tmp = document.createElement("div");
        tmp.innerHTML = html;
        var fresh = tmp.querySelector("#critical-alerts");
        if (fresh && fresh.innerHTML !== bar.innerHTML) {
          bar.innerHTML = fresh.innerHTML;
          bar.hidden = fresh.hidden;
        }
      })
      .catch(function () {});
  }
  setInterval(refresh, 5000);
})();
