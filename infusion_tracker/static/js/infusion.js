// Session page and discharge form: live previews only. The server computes and checks the
// same numbers on every save (clinical.dose, the Aldrete total); without script nothing is lost.
(function () {
  "use strict";
  var LB_PER_KG = 2.2046226218;

  function number(input) {
    if (!input || !input.value.trim()) { return null; }
    var value = parseFloat(input.value.replace(",", "."));
    return isFinite(value) && value > 0 ? value : null;
  }

  function round(value, places) {
    var factor = Math.pow(10, places);
    return String(Math.round(value * factor) / factor);
  }

  function dosePreview() {
    var summary = document.querySelector("[data-dose-summary]");
    var form = document.querySelector("[data-dose-form]");
    if (!summary || !form) { return; }
    var inputs = {
      weight: form.querySelector("#details-weight"),
      mgPerKg: form.querySelector("#details-dose_mg_per_kg"),
      minutes: form.querySelector("#details-duration_min"),
      concentration: form.querySelector("#details-concentration_mg_per_ml")
    };
    if (!inputs.weight) { return; }  // dose fixed once the infusion started
    var maxTotal = parseFloat(summary.getAttribute("data-max-total"));
    var inPounds = summary.getAttribute("data-weight-unit") === "lb";
    var warning = summary.querySelector("[data-dose-warning]");

    function out(name, text) {
      var el = summary.querySelector('[data-dose-out="' + name + '"]');
      if (el) { el.textContent = text; }
    }

    function update() {
      var weight = number(inputs.weight);
      var mgPerKg = number(inputs.mgPerKg);
      var minutes = number(inputs.minutes);
      var concentration = number(inputs.concentration);
      if (weight === null || mgPerKg === null || minutes === null || concentration === null) {
        ["total_mg", "mg_per_h", "ml_per_h", "volume_ml"].forEach(function (n) { out(n, "—"); });
        return;
      }
      var kg = inPounds ? Math.round(weight / LB_PER_KG * 100) / 100 : weight;
      var total = kg * mgPerKg;
      var mgPerH = total * 60 / minutes;
      out("total_mg", round(total, 2));
      out("mg_per_h", round(mgPerH, 2));
      out("ml_per_h", round(mgPerH / concentration, 2));
      out("volume_ml", round(total / concentration, 2));
      if (warning) {
        var tooMuch = total > maxTotal;
        warning.classList.toggle("is-hidden", !tooMuch);
        if (tooMuch) {
          warning.textContent = "Total dose " + round(total, 2) + " mg is above the protocol maximum of " +
            round(maxTotal, 2) + " mg. Starting needs a physician override with a reason.";
        }
      }
    }

    Object.keys(inputs).forEach(function (key) {
      if (inputs[key]) { inputs[key].addEventListener("input", update); }
    });
  }

  function aldreteTotal() {
    var total = document.querySelector("[data-aldrete-total]");
    if (!total) { return; }
    var form = total.closest("form");
    function update() {
      var groups = {};
      form.querySelectorAll(".aldrete-item input[type=radio]").forEach(function (radio) {
        groups[radio.name] = groups[radio.name] || null;
        if (radio.checked) { groups[radio.name] = parseInt(radio.value, 10); }
      });
      var names = Object.keys(groups);
      var answered = names.filter(function (n) { return groups[n] !== null; });
      total.textContent = answered.length === names.length
        ? String(answered.reduce(function (sum, n) { return sum + groups[n]; }, 0))
        : "—";
    }
    form.addEventListener("change", update);
  }

  document.addEventListener("DOMContentLoaded", function () {
    dosePreview();
    aldreteTotal();
  });
})();
