// Signing out for inactivity without losing what was typed (SPEC §8). No inline script (CSP).
//
// The server's idle clock is the authority: every signed-in request refreshes it
// (security.enforce_login). This script follows it: it warns before the limit, refreshes the
// clock through /account/keep-alive on "Stay signed in" and (at most every ping interval)
// while the person types, and at the limit replaces the page with the sign-in page so nothing
// of the patient stays on screen.
//
// A form marked data-keep-draft keeps what was typed in sessionStorage (this tab only). The
// draft goes through three states: "typing", "sent" (submitted) and "signed-out" (the sign-in
// page came in between). Back on the form after signing in, a signed-out draft is put back with
// a notice; a sent one that comes back as a fresh form was saved and is dropped.
(function () {
  "use strict";
  var CONTACT_KEY = "idle:last-contact"; // localStorage: every tab of this browser shares it
  var DRAFT_PREFIX = "idle:draft:"; // sessionStorage
  var MARGIN_MS = 2000; // act just after the server's limit, never before it
  var RESTORED = "Restored what you typed before you were signed out — check and record.";

  // --- Drafts ----------------------------------------------------------------------------------

  function readDraft(key) {
    try { return JSON.parse(window.sessionStorage.getItem(key)); } catch (e) { return null; }
  }

  function writeDraft(key, draft) {
    try { window.sessionStorage.setItem(key, JSON.stringify(draft)); } catch (e) { /* full or off */ }
  }

  function draftKeys() {
    var keys = [];
    try {
      for (var i = 0; i < window.sessionStorage.length; i++) {
        var key = window.sessionStorage.key(i);
        if (key.indexOf(DRAFT_PREFIX) === 0) { keys.push(key); }
      }
    } catch (e) { /* storage off: nothing kept */ }
    return keys;
  }

  function removeDraft(key) {
    try { window.sessionStorage.removeItem(key); } catch (e) { /* storage off */ }
  }

  function fields(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && el.name !== "csrf_token" &&
        ["hidden", "submit", "button", "reset", "file", "password"].indexOf(el.type) < 0;
    });
  }

  function valuesOf(form) {
    var values = {};
    fields(form).forEach(function (el) {
      if (el.type === "checkbox") { values[el.name] = el.checked; }
      else if (el.type === "radio") { if (el.checked) { values[el.name] = el.value; } }
      else { values[el.name] = el.value; }
    });
    return values;
  }

  function fill(form, values) {
    var filled = fields(form).filter(function (el) { return el.name in values; });
    filled.forEach(function (el) {
      var value = values[el.name];
      if (el.type === "checkbox") { el.checked = value === true; }
      else if (el.type === "radio") { el.checked = el.value === value; }
      else { el.value = value; }
    });
    // Only now, with every box set: charting.js shows "Other rhythm" and keeps O2 consistent.
    filled.forEach(function (el) { el.dispatchEvent(new Event("change", { bubbles: true })); });
  }

  function showRestored(form) {
    var notice = document.createElement("p");
    notice.className = "restored-notice";
    notice.setAttribute("role", "status");
    notice.textContent = RESTORED;
    form.parentNode.insertBefore(notice, form);
  }

  // The server sent the form back refused: the boxes hold what was typed, with messages.
  function refused(form) {
    return Boolean(form.parentNode.querySelector("[data-error-summary], .field--error"));
  }

  function keepDrafts(staff) {
    var forms = document.querySelectorAll("form[data-keep-draft]");
    Array.prototype.forEach.call(forms, function (form) {
      var key = DRAFT_PREFIX + staff + ":" + form.getAttribute("data-keep-draft");
      var draft = readDraft(key);
      if (draft && refused(form)) {
        writeDraft(key, { state: "typing", values: valuesOf(form) });
      } else if (draft && draft.state === "signed-out") {
        fill(form, draft.values);
        writeDraft(key, { state: "typing", values: draft.values });
        showRestored(form);
      } else if (draft) {
        removeDraft(key); // sent and back as a fresh form: saved; typing: the page was left
      }
      var save = function (state) { writeDraft(key, { state: state, values: valuesOf(form) }); };
      form.addEventListener("input", function () { save("typing"); });
      form.addEventListener("change", function () { save("typing"); });
      form.addEventListener("submit", function () { save("sent"); });
      // Leaving the page any other way (a link, reload) drops it, as without this script.
      window.addEventListener("pagehide", function () {
        var current = readDraft(key);
        if (current && current.state === "typing") { removeDraft(key); }
      });
    });
  }

  // The sign-in page came in between: whatever was typed or sent waits for the sign-in.
  function markSignedOut() {
    var kept = false;
    draftKeys().forEach(function (key) {
      var draft = readDraft(key);
      if (draft) { draft.state = "signed-out"; writeDraft(key, draft); kept = true; }
    });
    return kept;
  }

  // --- The idle clock --------------------------------------------------------------------------

  function startClock(body, staff) {
    var timeoutMs = Number(body.getAttribute("data-idle-timeout")) * 1000;
    var warningMs = Number(body.getAttribute("data-idle-warning")) * 1000;
    // Often enough that someone typing never sees the warning, at most once a minute.
    var pingEveryMs = Math.min(60000, (timeoutMs - warningMs) / 2);
    var lastContact = Date.now(); // this page's own request just refreshed the server's clock
    var lastActivity = 0;
    var pinging = false;
    var signedOut = false;
    var warning = null;

    function setContact(time) {
      lastContact = time;
      try { window.localStorage.setItem(CONTACT_KEY, String(time)); } catch (e) { /* off */ }
    }

    // The latest request any tab made: the server's clock counts from it.
    function contact() {
      var shared = 0;
      try { shared = Number(window.localStorage.getItem(CONTACT_KEY)) || 0; } catch (e) { /* off */ }
      return Math.max(lastContact, shared);
    }

    function signOut() {
      if (signedOut) { return; }
      signedOut = true;
      var next = body.getAttribute("data-idle-return");
      var url = body.getAttribute("data-login-url") + (next ? "?next=" + encodeURIComponent(next) : "");
      // Nothing of the patient stays on screen while the sign-in page loads (or if it cannot).
      var main = document.createElement("main");
      main.className = "page page--narrow";
      main.id = "main";
      var heading = document.createElement("h1");
      heading.textContent = "Signed out for inactivity";
      var link = document.createElement("a");
      link.href = url;
      link.textContent = "Sign in again";
      main.appendChild(heading);
      main.appendChild(link);
      document.body.replaceChildren(main);
      document.title = "Signed out";
      // Only now: removing the focused box fires its "change", which saves it as "typing".
      markSignedOut();
      window.location.replace(url);
    }

    function ping() {
      if (pinging || signedOut) { return; }
      pinging = true;
      var sent = lastActivity;
      window.fetch(body.getAttribute("data-keep-alive-url"), {
        method: "POST",
        headers: { "X-CSRFToken": body.getAttribute("data-csrf-token") },
        credentials: "same-origin",
        redirect: "manual", // a redirect to /login means the server has signed us out
        cache: "no-store"
      }).then(function (response) {
        pinging = false;
        if (response.status === 204) {
          setContact(Date.now());
          tick();
        } else {
          signOut();
        }
      }, function () {
        // No answer (network): the page stays; the next keystroke or click tries again.
        pinging = false;
        if (lastActivity === sent) { lastActivity = 0; }
        if (warning) { warning.problem.textContent = "The server did not answer. Check the network connection."; }
      });
    }

    function buildWarning() {
      var box = document.createElement("div");
      box.className = "idle-warning";
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", "Sign-out warning");
      var text = document.createElement("p");
      text.className = "idle-warning__text";
      text.setAttribute("aria-hidden", "true"); // counts down each second; read out once below
      var count = document.createElement("strong");
      text.appendChild(document.createTextNode("You will be signed out in "));
      text.appendChild(count);
      text.appendChild(document.createTextNode(" for inactivity."));
      var said = document.createElement("p");
      said.className = "visually-hidden";
      said.setAttribute("role", "alert");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "button";
      button.textContent = "Stay signed in";
      button.addEventListener("click", function () { lastActivity = Date.now(); ping(); });
      var problem = document.createElement("p");
      problem.className = "idle-warning__problem";
      problem.setAttribute("role", "alert");
      box.appendChild(text);
      box.appendChild(said);
      box.appendChild(button);
      box.appendChild(problem);
      document.body.insertBefore(box, document.body.firstChild);
      return { box: box, count: count, said: said, problem: problem };
    }

    function showWarning(leftMs) {
      var seconds = Math.max(1, Math.ceil(leftMs / 1000));
      if (!warning) {
        warning = buildWarning();
        warning.said.textContent = "You will be signed out in " + seconds +
          " seconds for inactivity. Choose Stay signed in, or type, to stay signed in.";
      }
      warning.count.textContent = seconds + " s";
    }

    function hideWarning() {
      if (warning) { warning.box.remove(); warning = null; }
    }

    function tick() {
      if (signedOut) { return; }
      var since = contact();
      if (lastActivity > since && Date.now() - since >= pingEveryMs) { ping(); }
      var leftMs = since + timeoutMs + MARGIN_MS - Date.now();
      if (leftMs <= 0) { signOut(); }
      else if (leftMs <= warningMs + MARGIN_MS) { showWarning(leftMs); }
      else { hideWarning(); }
    }

    function active() {
      lastActivity = Date.now();
      tick();
    }

    setContact(lastContact);
    document.addEventListener("input", active);
    document.addEventListener("change", active);
    window.setInterval(tick, 1000);
    // A background tab's timers are slowed, and Back may show a page from memory: catch up.
    document.addEventListener("visibilitychange", tick);
    window.addEventListener("pageshow", tick);
    keepDrafts(staff);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var body = document.body;
    var staff = body.getAttribute("data-staff");
    if (!staff) {
      // Signed out (the sign-in page): what was typed waits for the next sign-in.
      if (markSignedOut() && document.querySelector("form input[name=password]")) {
        var note = document.createElement("p");
        note.className = "restored-notice";
        note.setAttribute("role", "status");
        note.textContent = "What you typed before you were signed out is kept in this tab: sign in again to record it.";
        var heading = document.querySelector("main h1");
        if (heading) { heading.insertAdjacentElement("afterend", note); }
      }
      return;
    }
    // Signing out on purpose leaves nothing typed behind on a shared workstation.
    var signOutForm = document.querySelector("form[data-sign-out]");
    if (signOutForm) {
      signOutForm.addEventListener("submit", function () { draftKeys().forEach(removeDraft); });
    }
    startClock(body, staff);
  });
})();
