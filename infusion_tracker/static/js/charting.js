// Charting form conveniences (progressive: the form works without them). No inline script (CSP).
(function () {
  "use strict";

  function byName(form, suffix) {
    return form.querySelector("[name$='" + suffix + "']");
  }

  function setUp(form) {
    // Enter submits from every box, as it already does from the text boxes.
    form.addEventListener("keydown", function (event) {
      var target = event.target;
      if (event.key !== "Enter" || event.isComposing) { return; }
      if (target.tagName === "SELECT" || target.type === "checkbox" || target.type === "radio") {
        event.preventDefault();
        form.requestSubmit();
      }
    });

    // Room air and an O2 flow exclude each other.
    var roomAir = byName(form, "-o2_room_air");
    var flow = byName(form, "-o2_flow_lpm");
    if (roomAir && flow) {
      flow.addEventListener("input", function () { if (flow.value.trim()) { roomAir.checked = false; } });
      roomAir.addEventListener("change", function () { if (roomAir.checked) { flow.value = ""; } });
    }

    // "Other rhythm" only matters when the rhythm is "other".
    var rhythm = byName(form, "-rhythm");
    var other = byName(form, "-rhythm_other");
    var otherField = other && other.closest(".field");
    if (rhythm && otherField) {
      var sync = function () {
        otherField.hidden = rhythm.value !== "other" && !other.value && !otherField.classList.contains("field--error");
      };
      rhythm.addEventListener("change", sync);
      sync();
    }
  }

  // A page left open at the bedside still turns "due" into "OVERDUE" when the time passes.
  function watchDue(element) {
    var dueAt = Date.parse(element.getAttribute("data-due-at"));
    if (isNaN(dueAt)) { return; }
    var timer = window.setInterval(function () {
      if (Date.now() <= dueAt) { return; }
      element.classList.add("next-due--overdue");
      var state = element.querySelector(".next-due__state");
      if (state && !state.textContent.trim()) {
        var tag = document.createElement("span");
        tag.className = "tag tag--critical";
        tag.textContent = "OVERDUE";
        state.appendChild(tag);
      }
      window.clearInterval(timer);
    }, 15000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-enter-submits]").forEach(setUp);
    document.querySelectorAll("[data-due-at]").forEach(watchDue);
  });
})();
