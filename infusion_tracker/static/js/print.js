// The printable session record: the "Print" button opens the browser's print dialog.
// A static file because the Content-Security-Policy forbids inline script.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.addEventListener("click", function () { window.print(); });
    });
  });
})();
