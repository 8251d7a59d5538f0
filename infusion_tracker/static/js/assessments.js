// Outcome-score form: show the nine PHQ-9 items only while PHQ-9 is the chosen instrument,
// and show the computed total as the items are answered. Without script everything shows.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var instrument = document.getElementById("instrument");
    var items = document.querySelector("[data-phq9-items]");
    if (!instrument || !items) { return; }
    var total = document.createElement("p");
    total.className = "phq9-total";
    total.setAttribute("aria-live", "polite");
    items.appendChild(total);

    function update() {
      var checked = items.querySelectorAll("input[type=radio]:checked");
      // Never hide answers already given (they would be lost from view with their errors).
      items.hidden = instrument.value !== "phq9" && checked.length === 0;
      var sum = 0;
      checked.forEach(function (radio) { sum += parseInt(radio.value, 10); });
      total.textContent = checked.length
        ? "Items answered: " + checked.length + " of 9; total so far " + sum + "."
        : "";
    }
    instrument.addEventListener("change", update);
    items.addEventListener("change", update);
    update();
  });
})();
