// Progressive enhancement only; every page works without script. No inline script (CSP).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // A refused form: move focus to the error summary so it is read out first.
    var summary = document.querySelector("[data-error-summary]");
    if (summary) { summary.focus(); }

    // Buttons that need a second thought ("Cancel session", "Void") ask once.
    document.querySelectorAll("[data-confirm]").forEach(function (el) {
      el.addEventListener("click", function (event) {
        if (!window.confirm(el.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  });
})();
