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

  // "Unchanged since the last reading": ticking it shows the last O2, rhythm, AVPU and MOAA/S
  // in their boxes (only the blank ones), unticking takes back what it put there; a box the
  // clinician changes is theirs. The server does the same for the boxes left blank, so
  // without this script the tick still charts exactly the values listed beside it.
  function carryOver(form) {
    var group = form.querySelector("[data-carry]");
    var tick = group && group.querySelector("input[type=checkbox]");
    if (!tick) { return; }
    var values = JSON.parse(group.getAttribute("data-carry"));
    var placed = [];

    function blank(name) {
      var boxes = form.querySelectorAll("[name$='-" + name + "']");
      return Array.prototype.every.call(boxes, function (box) {
        return box.type === "radio" || box.type === "checkbox" ? !box.checked : !box.value;
      });
    }
    // Room air and an O2 flow are one answer: either filled means O2 was answered.
    function answered(name) {
      if (name === "o2_room_air" || name === "o2_flow_lpm") {
        return !(blank("o2_room_air") && blank("o2_flow_lpm"));
      }
      return !blank(name);
    }
    function place(name, value) {
      var boxes = form.querySelectorAll("[name$='-" + name + "']");
      Array.prototype.forEach.call(boxes, function (box) {
        if (box.type === "radio") { box.checked = box.value === value; }
        else if (box.type === "checkbox") { box.checked = true; }
        else { box.value = value; }
        box.dispatchEvent(new Event("change", { bubbles: true }));
        placed.push(box);
      });
    }
    function takeBack() {
      placed.forEach(function (box) {
        if (box.type === "radio" || box.type === "checkbox") { box.checked = false; }
        else { box.value = ""; }
        box.dispatchEvent(new Event("change", { bubbles: true }));
      });
      placed = [];
    }

    tick.addEventListener("change", function () {
      if (!tick.checked) { takeBack(); return; }
      var rhythmPlaced = false;
      Object.keys(values).forEach(function (name) {
        // The other rhythm's words go with the rhythm, never under a rhythm chosen by hand.
        if (name === "rhythm_other" && !rhythmPlaced) { return; }
        if (!answered(name)) {
          place(name, values[name]);
          rhythmPlaced = rhythmPlaced || name === "rhythm";
        }
      });
    });
    // A box changed by hand is no longer the tick's to take back.
    form.addEventListener("input", function (event) {
      placed = placed.filter(function (box) { return box !== event.target; });
    });
    form.addEventListener("change", function (event) {
      if (event.isTrusted) {
        placed = placed.filter(function (box) { return box.name !== event.target.name; });
      }
    });
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
    document.querySelectorAll("form[data-enter-submits]").forEach(carryOver);
    document.querySelectorAll("[data-due-at]").forEach(watchDue);
  });
})();
