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

    // A table wider than the screen scrolls in its .table-wrap: while it does, the wrapper is
    // a named region that takes keyboard focus, so the arrow keys can scroll it too (WCAG
    // 2.1.1). Tables that fit stay out of the Tab order.
    var wraps = document.querySelectorAll(".table-wrap:not([tabindex])");
    function regionName(wrap) {
      var caption = wrap.querySelector("caption");
      if (caption && caption.textContent.trim()) { return caption.textContent.trim(); }
      for (var el = wrap; el && el !== document.body; el = el.previousElementSibling || el.parentElement) {
        if (/^H[1-4]$/.test(el.tagName)) { return el.textContent.trim(); }
      }
      return "Table";
    }
    function markScrolling() {
      wraps.forEach(function (wrap) {
        if (wrap.scrollWidth > wrap.clientWidth + 1) {
          wrap.setAttribute("tabindex", "0");
          wrap.setAttribute("role", "region");
          wrap.setAttribute("aria-label", regionName(wrap) + " (scrolls sideways)");
        } else if (wrap.hasAttribute("role")) {
          wrap.removeAttribute("tabindex");
          wrap.removeAttribute("role");
          wrap.removeAttribute("aria-label");
        }
      });
    }
    if (wraps.length) {
      // Now (the styles are in), once everything has loaded, and on any later change of size.
      markScrolling();
      window.addEventListener("load", markScrolling);
      if (window.ResizeObserver) {
        var observer = new ResizeObserver(markScrolling);
        wraps.forEach(function (wrap) {
          observer.observe(wrap);
          if (wrap.firstElementChild) { observer.observe(wrap.firstElementChild); }
        });
      }
    }
  });
})();
