// The header's menu on phones. Marks the page as scripted (html.js), which lets
// app.css fold the navigation behind the #menu-toggle button at phone width;
// without this file the navigation simply stays open. The toggle opens and
// closes #site-nav and keeps aria-expanded in step; Escape closes it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // A form that came back with errors: focus moves to its summary at the top (the
  // screen reader reads it; the links in it lead to the fields).
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.querySelector(".error-summary");
    if (summary) {
      summary.focus();
      if (summary.scrollIntoView) summary.scrollIntoView({ block: "center" });
    }
  });

  function parts() {
    return { toggle: document.getElementById("menu-toggle"), nav: document.getElementById("site-nav") };
  }

  function setOpen(p, open) {
    p.nav.classList.toggle("open", open);
    p.toggle.setAttribute("aria-expanded", open ? "true" : "false");
  }

  // Delegated, so a header replaced after load still works.
  document.addEventListener("click", function (e) {
    var target = e.target;
    if (!target || !target.closest || !target.closest("#menu-toggle")) return;
    var p = parts();
    if (!p.toggle || !p.nav) return;
    setOpen(p, !p.nav.classList.contains("open"));
  });

  // Print buttons ([data-print]): no inline script under the page's CSP.
  document.addEventListener("click", function (e) {
    if (e.target && e.target.closest && e.target.closest("[data-print]")) window.print();
  });

  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape" && e.key !== "Esc") return;
    var p = parts();
    if (!p.toggle || !p.nav || !p.nav.classList.contains("open")) return;
    var inside = p.nav.contains(document.activeElement);
    setOpen(p, false);
    if (inside) p.toggle.focus();
  });
})();
