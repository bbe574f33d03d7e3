// chatbridge page: speaks the bridge's JSON protocol (chatbridge.v1.json)
// over /ws. Everything a user wrote is put on the page with textContent,
// never as HTML.
"use strict";

(function () {
  var PROTOCOL = "chatbridge.v1.json";
  var NICK_KEY = "chatbridge.nick";
  var MAX_LINES = 1000; // the transcript keeps this many lines

  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var embedded = location.pathname === "/embed" || params.get("embed") === "1";
  if (embedded) document.documentElement.classList.add("embed");

  var state = {
    ws: null,
    me: "",
    room: params.get("room") || "",
    members: new Map(), // folded name -> name
    count: 0,
    seen: new Set(), // keys of lines shown, so a reconnect's history adds nothing twice
    retry: 0,
    timer: null,
    everOnline: false,
  };

  var transcript, input, statusEl, statusText;

  function storedNick() {
    try { return localStorage.getItem(NICK_KEY) || ""; } catch (e) { return ""; }
  }
  function storeNick(n) {
    try { localStorage.setItem(NICK_KEY, n); } catch (e) { /* private mode */ }
  }

  // --- Connection ---------------------------------------------------------

  function connect() {
    clearTimeout(state.timer);
    var q = new URLSearchParams();
    if (state.room) q.set("room", state.room);
    // Only a name the reader chose is asked for again: guest names are the
    // server's to give, and a reconnecting guest simply gets a new one.
    var nick = storedNick();
    if (nick) q.set("nick", nick);
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + (q.toString() ? "?" + q : "");
    setStatus("connecting", state.everOnline ? "Reconnecting…" : "Connecting…");
    var ws;
    try {
      ws = new WebSocket(url, PROTOCOL);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    ws.onopen = function () {
      state.retry = 0;
      state.everOnline = true;
      setStatus("online", "Connected");
    };
    ws.onmessage = function (m) {
      var data;
      try { data = JSON.parse(m.data); } catch (e) { return; }
      // A frame is one event, or an array of events sent together.
      (Array.isArray(data) ? data : [data]).forEach(function (ev) {
        if (ev && typeof ev === "object") handle(ev, false);
      });
    };
    ws.onclose = function (e) {
      if (state.ws !== ws) return;
      state.ws = null;
      var why = e.reason ? " (" + e.reason + ")" : "";
      if (e.code === 1001 || e.code === 1006 || e.code === 1013 || e.code === 1012 || e.code === 1011) {
        notice("Disconnected" + why + ". Reconnecting…", "notice");
        scheduleReconnect();
      } else if (e.code === 1000 && e.reason === "bye") {
        setStatus("offline", "Left the chat");
        notice("You left the chat. Reload the page to come back.", "notice");
      } else {
        notice("Disconnected" + why + ". Reconnecting…", "error");
        scheduleReconnect();
      }
    };
  }

  // scheduleReconnect tries again after an exponential backoff with jitter:
  // 0.5 s, 1 s, 2 s ... at most 30 s.
  function scheduleReconnect() {
    var delay = Math.min(30000, 500 * Math.pow(2, state.retry));
    delay = delay / 2 + Math.random() * delay / 2;
    state.retry++;
    setStatus("offline", "Offline, retrying in " + Math.ceil(delay / 1000) + " s");
    state.timer = setTimeout(connect, delay);
  }

  function send(obj) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(obj));
    return true;
  }

  function setStatus(s, text) {
    statusEl.dataset.state = s;
    statusText.textContent = text;
    var btn = document.querySelector("#send-form button");
    if (btn) btn.disabled = s !== "online";
  }

  // --- Events -------------------------------------------------------------

  function handle(ev, fromHistory) {
    switch (ev.type) {
      case "hello":
        state.me = ev.to || state.me;
        state.room = ev.room || state.room;
        $("room-name").textContent = "#" + state.room;
        $("room").value = state.room;
        $("nick").value = state.me;
        document.title = "#" + state.room + " · chatbridge";
        updateURL();
        updateSnippet();
        state.members.clear();
        line(ev, "notice", ev.text);
        break;
      case "history":
        if (ev.events && ev.events.length) {
          var fresh = ev.events.filter(function (h) { return !state.seen.has(key(h)); });
          if (fresh.length) {
            divider("Earlier in #" + (ev.room || state.room));
            fresh.forEach(function (h) { handle(h, true); });
            divider("Now");
          }
        }
        break;
      case "batch":
        (ev.events || []).forEach(function (h) { handle(h, fromHistory); });
        break;
      case "presence":
        state.members.clear();
        (ev.names || []).forEach(addMember);
        state.count = ev.count || state.members.size;
        renderMembers();
        if (!fromHistory && ev.names && state.ws && state.lastWho) {
          state.lastWho = false;
          line(ev, "notice", ev.count + " in " + ev.room + ": " + ev.names.join(", ") + (ev.count > ev.names.length ? " and " + (ev.count - ev.names.length) + " more" : ""));
        }
        break;
      case "message":
        if (remember(ev)) chatLine(ev, "", ev.text);
        break;
      case "action":
        if (remember(ev)) chatLine(ev, "action", ev.text);
        break;
      case "private":
        if (ev.echo) line(ev, "private", "→ " + ev.to + ": " + ev.text);
        else line(ev, "private", "from " + ev.from + ": " + ev.text);
        break;
      case "join":
        addMember(ev.from);
        state.count++;
        renderMembers();
        if (ev.from !== state.me) line(ev, "notice", ev.from + " joined");
        break;
      case "leave":
        removeMember(ev.from);
        state.count = Math.max(0, state.count - 1);
        renderMembers();
        line(ev, "notice", ev.from + " left" + (ev.text ? " (" + ev.text + ")" : ""));
        break;
      case "nick":
        removeMember(ev.from);
        addMember(ev.to);
        renderMembers();
        if (ev.from === state.me) {
          state.me = ev.to;
          $("nick").value = ev.to;
          storeNick(ev.to);
          line(ev, "notice", "You are now known as " + ev.to);
        } else {
          line(ev, "notice", ev.from + " is now known as " + ev.to);
        }
        break;
      case "error":
        line(ev, "error", ev.text);
        break;
      default: // system and anything newer than this page
        if (ev.text) line(ev, "notice", ev.text);
    }
  }

  function key(ev) { return ev.time + "\u0000" + ev.from + "\u0000" + ev.text; }

  function remember(ev) {
    var k = key(ev);
    if (state.seen.has(k)) return false;
    state.seen.add(k);
    if (state.seen.size > 4 * MAX_LINES) state.seen = new Set(Array.from(state.seen).slice(-2 * MAX_LINES));
    return true;
  }

  function addMember(name) {
    if (name) state.members.set(name.toLowerCase(), name);
  }
  function removeMember(name) {
    if (name) state.members.delete(name.toLowerCase());
  }

  function renderMembers() {
    var ul = $("members");
    var names = Array.from(state.members.values()).sort(function (a, b) {
      return a.toLowerCase() < b.toLowerCase() ? -1 : 1;
    });
    ul.replaceChildren();
    names.forEach(function (n) {
      var li = document.createElement("li");
      li.textContent = n;
      if (n === state.me) {
        li.className = "me";
        li.title = "you";
      }
      ul.appendChild(li);
    });
    var total = Math.max(state.count, names.length);
    $("member-count").textContent = "(" + total + ")";
  }

  // --- The transcript -----------------------------------------------------

  function stamp(ev) {
    var t = document.createElement("time");
    var d = ev.time ? new Date(ev.time) : new Date();
    t.dateTime = d.toISOString();
    t.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return t;
  }

  function append(el) {
    var near = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 80;
    var empty = transcript.querySelector(".empty");
    if (empty) empty.remove();
    transcript.appendChild(el);
    while (transcript.childElementCount > MAX_LINES) transcript.firstElementChild.remove();
    if (near) transcript.scrollTop = transcript.scrollHeight;
  }

  function chatLine(ev, kind, text) {
    var p = document.createElement("p");
    p.className = "line" + (kind ? " " + kind : "") + (ev.from === state.me ? " mine" : "");
    p.appendChild(stamp(ev));
    var from = document.createElement("span");
    from.className = "from";
    from.textContent = kind === "action" ? "* " + ev.from : ev.from;
    p.appendChild(from);
    var body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    p.appendChild(body);
    append(p);
  }

  function line(ev, kind, text) {
    var p = document.createElement("p");
    p.className = "line " + kind;
    p.appendChild(stamp(ev));
    var body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    p.appendChild(body);
    append(p);
  }

  function notice(text, kind) { line({}, kind, text); }

  function divider(text) {
    var p = document.createElement("p");
    p.className = "line divider";
    p.textContent = text;
    append(p);
  }

  // --- The page around it -------------------------------------------------

  function updateURL() {
    var u = new URL(location.href);
    if (state.room) u.searchParams.set("room", state.room);
    history.replaceState(null, "", u);
  }

  function updateSnippet() {
    var room = state.room ? ' data-room="' + state.room + '"' : "";
    $("snippet").value = '<script src="' + location.origin + '/embed.js"' + room + ' data-height="400"></' + "script>";
  }

  function init() {
    transcript = $("transcript");
    input = $("message");
    statusEl = $("status");
    statusText = $("status-text");
    var empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No messages yet. Say hello!";
    transcript.appendChild(empty);
    updateSnippet();
    if (embedded || window.matchMedia("(max-width: 759px)").matches) $("people").open = false;

    $("send-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var text = input.value;
      if (!text.trim()) return;
      var isCommand = text.charAt(0) === "/" && text.charAt(1) !== "/";
      if (isCommand && /^\/(who|names)\b/i.test(text)) state.lastWho = true;
      if (send(isCommand ? { type: "command", text: text } : { type: "message", text: text.replace(/^\/\//, "/") })) {
        input.value = "";
      } else {
        notice("Not connected; your message was not sent.", "error");
      }
    });
    $("nick-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var n = $("nick").value.trim();
      if (n && n !== state.me) send({ type: "command", text: "/nick " + n });
      input.focus();
    });
    $("room-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var r = $("room").value.trim().replace(/^#/, "");
      if (r && r.toLowerCase() !== state.room) send({ type: "command", text: "/join " + r });
      input.focus();
    });
    $("copy").addEventListener("click", function () {
      var ta = $("snippet");
      var done = function () { $("copied").textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(ta.value).then(done, function () { ta.select(); });
      } else {
        ta.select();
        try { if (document.execCommand("copy")) done(); } catch (err) { /* selected for the user */ }
      }
    });
    connect();
    if (!embedded) input.focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
