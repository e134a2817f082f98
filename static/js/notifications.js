// Live notifications: the database is the source of truth, the socket only brings what is new.
// On every (re)connection the page sends the last id it holds and the server replays what came
// after; ids already shown are ignored. Heartbeat every 25 s, reconnection with back-off (minutes
// after a close for too many sockets, 4429, or a refused frame, 4400). Rings
// lost while the socket was down (server restarted, Redis unreachable) also concerned the live parts
// of the page: after a reconnection they are all read again.
(function () {
  "use strict";
  var body = document.body;
  if (!body.dataset.notificationsUrl) { return; }
  var lastId = parseInt(body.dataset.notificationLastId || "0", 10);
  var seen = {};
  var delay = 1000;
  var interrupted = false;  // a socket closed or failed since the page was rendered
  var socket = null;
  var heartbeat = null;
  var revoked = false;
  var boardTimer = null;
  var bell = document.getElementById("notification-bell");
  var bellCount = document.getElementById("notification-count");
  var toasts = document.getElementById("notification-toasts");
  var TOAST_MS = 20000;
  var TOO_MANY = 4429;  // notifications.consumers.CLOSE_TOO_MANY
  var BAD_FRAME = 4400;  // notifications.consumers.CLOSE_BAD_FRAME
  var SLOW_RETRY_MS = 3 * 60 * 1000;  // 3 to 6 minutes after one of those

  function setCount(count) {
    if (!bellCount) { return; }
    bellCount.textContent = String(count);
    bell.dataset.unread = String(count);
  }

  function toast(message) {
    if (!toasts) { return; }
    var box = document.createElement("div");
    box.className = "fr-alert fr-alert--info fr-alert--sm";
    var link = document.createElement("a");
    link.href = message.url;
    link.textContent = message.text;  // text, never HTML
    var p = document.createElement("p");
    p.appendChild(link);
    box.appendChild(p);
    var close = document.createElement("button");
    close.type = "button";
    close.className = "fr-btn--close fr-btn";
    close.title = toasts.dataset.closeLabel || "";
    close.textContent = toasts.dataset.closeLabel || "×";
    close.addEventListener("click", function () { box.remove(); });
    box.appendChild(close);
    toasts.appendChild(box);
    // Long enough to be reached with the keyboard, and never while it is pointed at or focused.
    function expire() {
      if (box.matches(":hover") || box.contains(document.activeElement)) {
        setTimeout(expire, 5000);
      } else {
        box.remove();
      }
    }
    setTimeout(expire, TOAST_MS);
  }

  function refreshLiveParts(selector) {
    // Parts marked data-live-refresh (or data-live-board, for board events of a pilot site the user
    // animates) are reloaded in place (htmx), unless the user is typing in them.
    // A keyboard user's focus on a link or button of the part comes back to the same link (same
    // address) or control (same id) once the part is replaced.
    document.querySelectorAll(selector || "[data-live-refresh]").forEach(function (part) {
      var focused = part.contains(document.activeElement) ? document.activeElement : null;
      if (focused && focused.form) { return; }
      if (window.htmx && part.id) {
        var id = focused && focused.id;
        var href = focused && focused.getAttribute("href");
        window.htmx.ajax("GET", window.location.href, { target: "#" + part.id, select: "#" + part.id, swap: "outerHTML" })
          .then(function () {
            if (!focused) { return; }
            var fresh = document.getElementById(part.id);
            var again = fresh && (id ? document.getElementById(id) : href ? fresh.querySelector('a[href="' + CSS.escape(href) + '"]') : null);
            if (again) { again.focus(); }
          });
      }
    });
  }

  function onMessage(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    if (message.type === "notification") {
      if (seen[message.id] || message.id <= lastId) { return; }
      seen[message.id] = true;
      lastId = message.id;
      if (!message.read) { setCount(parseInt(bell.dataset.unread || "0", 10) + 1); }
      toast(message);
      refreshLiveParts();
    } else if (message.type === "board") {
      // A burst of changes (a weekly review) refreshes the board once.
      if (!boardTimer) {
        boardTimer = setTimeout(function () { boardTimer = null; refreshLiveParts("[data-live-board]"); }, 1000);
      }
    } else if (message.type === "revoked") {
      revoked = true;  // the session ended: stop reconnecting; a reload leads to the login page
    }
  }

  function connect() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + body.dataset.notificationsUrl);
    socket.addEventListener("open", function () {
      delay = 1000;
      socket.send(JSON.stringify({ type: "hello", last_id: lastId }));
      if (interrupted) { refreshLiveParts("[data-live-refresh], [data-live-board]"); }
      interrupted = false;
      heartbeat = setInterval(function () {
        if (socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify({ type: "ping" })); }
      }, 25000);
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function (event) {
      clearInterval(heartbeat);
      interrupted = true;
      if (revoked) { return; }
      var wait;
      if (event.code === TOO_MANY || event.code === BAD_FRAME) {
        // Too many pages open for this user, or a frame the server refused: trying again at once
        // would be refused the same way. Minutes, not seconds.
        wait = SLOW_RETRY_MS + Math.random() * SLOW_RETRY_MS;
      } else {
        wait = delay + Math.random() * 1000;
        delay = Math.min(delay * 2, 30000);
      }
      setTimeout(connect, wait);
    });
  }

  connect();
})();
