// The suite board updates itself (issue 10). No inline script (CSP); without script the page
// still works and says "reload for the latest".
//
// Every few seconds the board asks /board/version for its fingerprint (no patient data; 304
// while nothing changed). When the fingerprint changes, or the moment passes at which a reading
// falls due or the planned minutes are reached (data-next-change, decided by the server), it
// fetches its rooms again (/board/rooms) and swaps in the cards that changed. A critical value,
// a newly overdue reading or a stop prompt that was not on the board before is announced in the
// news list (aria-live). The polls are not activity: the idle sign-out still applies, and a
// board whose sign-in has ended stops, hides its patients and says "signed out — reload".
(function () {
  "use strict";
  var POLL_MS = 5000;
  var MAX_WAIT_MS = 60000;
  var CHANGED_MS = 6000;
  var NEWS_KEPT = 4;
  var PARTS = ["board-planned", "board-finished"];

  function Board(frame) {
    this.frame = frame;
    this.live = frame.querySelector("#board-live");
    this.state = document.querySelector("[data-board-state]");
    this.asOf = document.querySelector("[data-board-as-of]");
    this.news = document.querySelector("[data-board-news]");
    this.versionUrl = frame.getAttribute("data-version-url");
    this.roomsUrl = frame.getAttribute("data-rooms-url");
    this.served = {}; // part key -> drawn(part) as last fetched
    this.offset = 0; // the server's clock minus this one, ms
    this.failures = 0;
    this.stopped = false;
    this.busy = false; // a check is on its way: the next one waits for it
    this.timer = null;
  }

  // --- Reading a fetched (or the first) board -------------------------------------------------

  function parts(root) {
    var found = {};
    root.querySelectorAll("[data-room]").forEach(function (el) {
      found["room:" + el.getAttribute("data-room")] = el;
    });
    PARTS.forEach(function (id) {
      var el = root.querySelector("#" + id);
      if (el) { found[id] = el; }
    });
    return found;
  }

  // A part as the server drew it, less the minutes that count on by themselves: a card whose
  // only difference is the minute is left alone.
  function drawn(el) {
    var copy = el.cloneNode(true);
    copy.querySelectorAll("[data-minutes-since]").forEach(function (minutes) { minutes.textContent = ""; });
    return copy.outerHTML;
  }

  function alerts(root) {
    var found = {};
    root.querySelectorAll("[data-alert]").forEach(function (el) {
      var card = el.closest("[data-room]");
      var text = el.getAttribute("data-alert-text") || el.textContent.replace(/\s+/g, " ").trim();
      found[el.getAttribute("data-alert")] = (card ? card.getAttribute("data-room") + ": " : "") + text;
    });
    return found;
  }

  Board.prototype.adopt = function () {
    var live = this.live;
    this.version = live.getAttribute("data-version");
    this.offset = Number(live.getAttribute("data-now")) - Date.now();
    this.nextChange = Number(live.getAttribute("data-next-change")) || null;
    this.asOf.textContent = live.getAttribute("data-as-of");
    var served = this.served = {};
    var found = parts(live);
    Object.keys(found).forEach(function (key) { served[key] = drawn(found[key]); });
    this.tick();
  };

  // Minutes since start count on between fetches (plain arithmetic on the server's clock).
  Board.prototype.tick = function () {
    var now = Date.now() + this.offset;
    this.live.querySelectorAll("[data-minutes-since]").forEach(function (el) {
      var minutes = Math.max(0, Math.floor((now - Number(el.getAttribute("data-minutes-since"))) / 60000));
      el.textContent = minutes + " min since start";
    });
  };

  Board.prototype.due = function () {
    return this.nextChange !== null && Date.now() + this.offset >= this.nextChange;
  };

  // --- Swapping in a fresh board --------------------------------------------------------------

  Board.prototype.swap = function (fresh) {
    var before = alerts(this.live);
    var focused = document.activeElement;
    var focusedHref = this.live.contains(focused) && focused.getAttribute("href");
    var old = parts(this.live);
    var neu = parts(fresh);
    var changed = [];
    if (Object.keys(old).join("\n") !== Object.keys(neu).join("\n")) {
      this.live.replaceWith(fresh); // a room came or went: the whole board
      this.live = fresh;
    } else {
      var served = this.served;
      Object.keys(neu).forEach(function (key) {
        if (served[key] !== drawn(neu[key])) {
          old[key].replaceWith(neu[key]);
          changed.push(neu[key]);
        }
      });
      var live = this.live;
      Array.prototype.forEach.call(fresh.attributes, function (attribute) {
        live.setAttribute(attribute.name, attribute.value);
      });
    }
    this.adopt();
    if (focusedHref && !document.contains(focused)) {
      var again = this.live.querySelector('a[href="' + CSS.escape(focusedHref) + '"]');
      if (again) { again.focus(); }
    }
    changed.forEach(function (el) {
      if (el.classList.contains("board-card")) {
        el.classList.add("board-card--changed");
        window.setTimeout(function () { el.classList.remove("board-card--changed"); }, CHANGED_MS);
      }
    });
    var after = alerts(this.live);
    this.announce(Object.keys(after).filter(function (key) { return !(key in before); })
      .map(function (key) { return after[key]; }));
  };

  // Newest first, the last few kept in view; each added line is read out once.
  Board.prototype.announce = function (lines) {
    if (!lines.length) { return; }
    var list = this.news.querySelector("ul");
    var at = this.asOf.textContent;
    lines.forEach(function (line) {
      var item = document.createElement("li");
      item.textContent = at + " " + line;
      list.insertBefore(item, list.firstChild);
    });
    while (list.children.length > NEWS_KEPT) { list.lastChild.remove(); }
    this.news.hidden = false;
  };

  // --- Talking to the server ------------------------------------------------------------------

  function get(url, headers) {
    return window.fetch(url, {
      headers: headers || {},
      credentials: "same-origin",
      redirect: "manual", // a redirect to the sign-in page means the sign-in has ended
      cache: "no-store"
    });
  }

  function endedSignIn(response) {
    return response.type === "opaqueredirect" || response.status === 401 || response.status === 403;
  }

  function SignedOut() {}

  Board.prototype.refresh = function () {
    var board = this;
    return get(this.roomsUrl).then(function (response) {
      if (endedSignIn(response)) { throw new SignedOut(); }
      if (!response.ok) { throw new Error("board " + response.status); }
      return response.text();
    }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("board-live");
      if (!fresh) { throw new Error("no board in the answer"); }
      board.swap(document.adoptNode(fresh));
    });
  };

  Board.prototype.check = function () {
    var board = this;
    return get(this.versionUrl, { "If-None-Match": '"' + this.version + '"' }).then(function (response) {
      if (endedSignIn(response)) { throw new SignedOut(); }
      if (response.status === 304) { return board.due() ? board.refresh() : null; }
      if (!response.ok) { throw new Error("version " + response.status); }
      return response.json().then(function (body) {
        return body.version !== board.version || board.due() ? board.refresh() : null;
      });
    });
  };

  Board.prototype.poll = function () {
    var board = this;
    this.timer = null;
    if (this.stopped || this.busy) { return; }
    this.busy = true;
    this.check().then(function () {
      board.busy = false;
      board.failures = 0;
      board.say("updates by itself", false);
      board.schedule(POLL_MS);
    }, function (error) {
      board.busy = false;
      if (error instanceof SignedOut) { board.signedOut(); return; }
      board.failures += 1;
      board.say("no answer from the server — retrying", true);
      board.schedule(Math.min(MAX_WAIT_MS, POLL_MS * Math.pow(2, board.failures)));
    });
  };

  Board.prototype.schedule = function (ms) {
    if (this.stopped) { return; }
    window.clearTimeout(this.timer);
    var board = this;
    this.timer = window.setTimeout(function () { board.poll(); }, ms);
  };

  Board.prototype.say = function (words, trouble) {
    if (this.state.textContent !== words) { this.state.textContent = words; }
    this.state.classList.toggle("board-status--trouble", trouble);
  };

  // The sign-in ended (elsewhere, or its limits): stop asking, and leave no patient on screen
  // looking current.
  Board.prototype.signedOut = function () {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.say("signed out — reload", true);
    var notice = document.createElement("p");
    notice.className = "banner banner--warning";
    var link = document.createElement("a");
    link.href = window.location.pathname;
    link.textContent = "Reload";
    notice.appendChild(document.createTextNode("Signed out — the board no longer updates. "));
    notice.appendChild(link);
    notice.appendChild(document.createTextNode(" to sign in again."));
    this.live.replaceChildren(notice);
    this.news.hidden = true;
  };

  Board.prototype.start = function () {
    var board = this;
    this.adopt();
    this.say("updates by itself", false);
    this.schedule(POLL_MS);
    window.setInterval(function () { if (!board.stopped) { board.tick(); } }, 15000);
    // A background tab's timers are slowed: look again as soon as it is shown.
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && !board.stopped) { board.schedule(0); }
    });
  };

  document.addEventListener("DOMContentLoaded", function () {
    var frame = document.querySelector("[data-board-live]");
    if (frame && window.fetch && window.DOMParser) { new Board(frame).start(); }
  });
})();
