// chatbridge page: speaks the bridge's JSON protocol (chatbridge.v1.json)
// over /ws. Everything a user wrote is put on the page as text nodes and
// elements made here, never parsed as HTML; links are http(s) only.
//
// A frame from the server (one event, or an array of them) is handled
// event by event, each checked on its own, and then drawn at once: one
// fragment, one trim, one scroll. A frame of thousands of events draws
// only its last FRAME_LINES lines and says how many it left out.
//
// Scrollback: the room's past (its history on join, and the pages "Load
// earlier" and scrolling to the top fetch) grows upward in #past, the
// log's first child, where it is not read out as it comes; live lines are
// added below it. A day divider stands wherever the day changes between
// two lines, and above the first.
"use strict";

(function () {
  var PROTOCOL = "chatbridge.v1.json";
  var NICK_KEY = "chatbridge.nick";
  var NOTIFY_KEY = "chatbridge.notify";
  var MAX_LINES = 1000; // the transcript keeps this many lines
  var FRAME_LINES = 300; // one frame draws at most this many of its lines
  var MAX_MEMBERS_SHOWN = 200;
  var ROOM_RE = /^#?[A-Za-z0-9_-]{1,32}$/;
  var NAME_RE = /^[A-Za-z0-9_-]{1,24}$/;
  // After a refusal (1013: the server or your address is full) or being
  // cut off (1008: flooding, too slow), coming straight back would only
  // be refused again: wait at least this long.
  var REFUSED_WAIT = 10000;
  var PENDING_FOR = 15000; // an error this soon after a send is about it
  var JOINED = 50; // ms: lines of one sender this close in a history were one message
  var PAGE = 50; // lines "Load earlier" asks for
  // Loading earlier lines lets the transcript hold more than MAX_LINES,
  // up to this many, until the reader goes back to the end.
  var MAX_SCROLLBACK = 5000;
  var ANSWER_WAIT = 15000; // a page of earlier lines not come by then has failed
  // The server answers 5 requests for earlier lines at once, then one
  // every 2 s (README, /history); the page keeps to that, with a margin
  // for the network, so that a reader scrolling up fast waits a little
  // rather than being refused.
  var ASK_BURST = 5;
  var ASK_EVERY = 2200;

  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var embedded = location.pathname === "/embed" || params.get("embed") === "1";
  var root = document.documentElement;
  if (embedded) root.classList.add("embed");
  var launcher = embedded && params.get("launcher") === "1";
  var autoHeight = embedded && params.get("height") === "auto";
  applyTheme(params.get("theme"), params.get("accent"));

  var asked = params.get("room") || "";
  // A site that signs its readers in gives the embed a token in the
  // fragment (embed.js data-token), which no request and no Referer
  // carries. It leaves the address at once, and goes only into the
  // WebSocket's URL, where the server takes the name it gives.
  var token = (function () {
    var h = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (!h.has("token")) return "";
    history.replaceState(null, "", location.pathname + location.search);
    var t = h.get("token");
    return /^[A-Za-z0-9_.-]{1,4096}$/.test(t) ? t : "";
  })();
  var state = {
    ws: null,
    online: false, // a hello came on this connection
    me: "",
    room: "", // as the server confirmed it in hello
    askedRoom: ROOM_RE.test(asked) ? asked.replace(/^#/, "") : "",
    members: new Map(), // folded name -> name
    registered: new Set(), // folded names the last presence said are registered
    verified: new Set(), // folded names the last presence said are signed in by the site
    count: 0,
    seen: new Set(), // keys of lines shown, so a reconnect's history adds nothing twice
    retry: 0,
    timer: null,
    reconnectAt: 0,
    ticker: null,
    outage: null, // the transcript line of the current outage, updated in place
    outageWhy: "",
    outageSince: null, // when a connection that had said hello ended
    welcomed: false, // a hello came once
    quit: false,
    lastWho: false,
    pending: null, // the last thing sent: {text, last, at}
    atBottom: true,
    marker: null, // the "new messages" line
    unseen: 0, // lines below the marker the reader has not scrolled to
    unreadTitle: 0, // lines while the tab is hidden
    unreadEmbed: 0, // lines while the embed is out of sight
    unreadChanged: false,
    inView: true,
    mentionRe: null,
    // Scrollback.
    more: null, // the room has lines before the oldest shown: true, false, or null (the server does not say)
    loading: null, // the request for earlier lines that is out: {timer, sentAfter}
    failed: "", // why the last request failed: only the reader tries again
    replayNext: false, // a hello came, and the room's history (if any) is next
    replayed: false, // the history of the last hello came
    replayAbove: false, // that history is the room's first on the page: it goes in #past
    limit: MAX_LINES, // the transcript keeps this many lines
    lastDay: "", // the day of the last line with a time
    topDivider: null, // the day divider above the first line with a time
    lastTop: 0, // the transcript's scrollTop, to tell scrolling up
    asks: ASK_BURST, // requests for earlier lines the server would take now (below 0: owed)
    askedAt: 0, // when asks was reckoned
    typedHistory: false, // the reader typed /history: its answer is theirs
  };

  var transcript, past, input, statusEl, statusText, menu, menuButton;
  var timeFmt = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
  var dayFmt = new Intl.DateTimeFormat([], { weekday: "long", day: "numeric", month: "long" });
  var dayYearFmt = new Intl.DateTimeFormat([], { weekday: "long", day: "numeric", month: "long", year: "numeric" });

  function storedNick() {
    try { return localStorage.getItem(NICK_KEY) || ""; } catch (e) { return ""; }
  }
  function storeNick(n) {
    try { localStorage.setItem(NICK_KEY, n); } catch (e) { /* private mode */ }
  }
  function str(v) { return typeof v === "string" ? v : ""; }

  // --- Theme -------------------------------------------------------------

  function applyTheme(theme, accent) {
    if (theme === "light" || theme === "dark") root.dataset.theme = theme;
    if (accent && /^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/.test(accent)) {
      root.style.setProperty("--custom-accent", accent);
      root.style.setProperty("--custom-accent-text", textOn(accent));
      root.dataset.accent = "";
    }
  }

  // textOn picks black or white text, whichever reads better on colour c.
  function textOn(c) {
    var h = c.slice(1);
    if (h.length === 3) h = h.replace(/./g, "$&$&");
    var lin = function (i) {
      var v = parseInt(h.substr(i, 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    var l = 0.2126 * lin(0) + 0.7152 * lin(2) + 0.0722 * lin(4);
    return (l + 0.05) / 0.05 > 1.05 / (l + 0.05) ? "#000000" : "#ffffff";
  }

  // --- Talking to the embedding page --------------------------------------

  // The embed tells its parent page about unread lines and mentions, and
  // nothing else; it listens to no message from it. Messages go to the
  // parent's origin when the browser says what it is (Chromium and Safari
  // through ancestorOrigins, others through the referrer, unless the page
  // sends none); failing that, to any.
  var parentOrigin = (function () {
    try {
      if (location.ancestorOrigins && location.ancestorOrigins.length) return location.ancestorOrigins[0];
    } catch (e) { /* not there */ }
    try {
      if (document.referrer) return new URL(document.referrer).origin;
    } catch (e) { /* not a URL */ }
    return "*";
  })();
  if (parentOrigin === "null") parentOrigin = "*";

  function post(msg) {
    if (!embedded || window.parent === window) return;
    msg.source = "chatbridge";
    try { window.parent.postMessage(msg, parentOrigin); } catch (e) { /* gone */ }
  }

  // --- Connection ---------------------------------------------------------

  function connect() {
    clearTimeout(state.timer);
    stopTicker();
    state.quit = false;
    var q = new URLSearchParams();
    var room = state.room || state.askedRoom;
    if (room) q.set("room", room);
    // Only a name the reader chose is asked for again: guest names are the
    // server's to give, and a reconnecting guest simply gets a new one.
    var nick = storedNick();
    if (NAME_RE.test(nick)) q.set("nick", nick);
    if (token) q.set("token", token);
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" + (q.toString() ? "?" + q : "");
    setStatus("connecting", state.outage ? "Reconnecting…" : "Connecting…");
    var ws;
    try {
      ws = new WebSocket(url, PROTOCOL);
    } catch (e) {
      scheduleReconnect(0);
      return;
    }
    state.ws = ws;
    ws.onmessage = function (m) {
      if (state.ws === ws) frame(m.data);
    };
    ws.onclose = function (e) {
      if (state.ws !== ws) return;
      state.ws = null;
      closed(e);
    };
  }

  // whyClosed says in words why the connection ended.
  function whyClosed(e) {
    var r = str(e.reason);
    switch (e.code) {
      case 1006: return "connection lost";
      case 1013: return r || "the server is busy";
      case 1008: return r || "cut off by the server";
      default: return r || "closed (" + e.code + ")";
    }
  }

  function closed(e) {
    var wasOnline = state.online;
    state.online = false;
    setStale(true);
    if (state.loading) {
      // Its answer went with the connection; the outage line says why.
      clearTimeout(state.loading.timer);
      state.loading = null;
    }
    updateEarlier();
    if (e.code === 1000 && e.reason === "bye") {
      state.quit = true;
      setStatus("offline", "You left the chat");
      rejoinLine();
      return;
    }
    if (e.code === 1008 && /^sign-in/.test(str(e.reason))) {
      // The token will not do better next time: the reader must sign
      // in again on the site, which gives the page a new one.
      state.quit = true;
      setStatus("offline", "Not signed in");
      render([line({}, "error", "Cannot join the chat (" + e.reason + ").")]);
      return;
    }
    state.outageWhy = whyClosed(e);
    if (wasOnline) state.outageSince = new Date();
    var floor = e.code === 1013 || e.code === 1008 ? REFUSED_WAIT : 0;
    scheduleReconnect(floor);
  }

  // scheduleReconnect tries again after an exponential back-off with
  // jitter, 0.5 s doubling to 30 s, and at least floor. The back-off goes
  // back to the start only once a hello has come: a server that takes the
  // connection and closes it at once (full) is not a connection made.
  function scheduleReconnect(floor) {
    var delay = Math.min(30000, 500 * Math.pow(2, state.retry));
    delay = delay / 2 + Math.random() * delay / 2;
    if (delay < floor) delay = floor + Math.random() * floor / 2;
    state.retry++;
    state.reconnectAt = Date.now() + delay;
    state.timer = setTimeout(connect, delay);
    showOutage();
    stopTicker();
    state.ticker = setInterval(showOutage, 1000);
  }

  function stopTicker() {
    clearInterval(state.ticker);
    state.ticker = null;
  }

  // showOutage puts the state of an outage in one place, updated in
  // place: the status in the bar, and one line in the transcript.
  function showOutage() {
    var secs = Math.max(0, Math.ceil((state.reconnectAt - Date.now()) / 1000));
    // The status is a live region: it says "Offline, retrying" once, and
    // the seconds are for the eye only.
    setStatus("offline", "Offline, retrying");
    $("status-count").textContent = " in " + secs + " s";
    var text = (state.outageSince ? "Disconnected: " : "Cannot connect: ") + state.outageWhy + ". Trying again in " + secs + " s…";
    if (!state.outage) {
      var el = document.createElement("div");
      el.className = "line outage";
      el.appendChild(stamp({}));
      var span = document.createElement("span");
      span.className = "text";
      el.appendChild(span);
      state.outage = el;
      render([{ make: function () { return el; } }]);
    }
    state.outage.lastChild.textContent = text;
  }

  // outageOver closes the outage's line once a hello comes.
  function outageOver() {
    stopTicker();
    if (!state.outage) return;
    state.outage.lastChild.textContent = state.outageSince
      ? "Disconnected (" + state.outageWhy + ") at " + timeFmt.format(state.outageSince) +
        "; back now. Lines said while you were away may be missing: the room's recent lines follow."
      : "Connected.";
    state.outage = null;
    state.outageSince = null;
  }

  function rejoinLine() {
    var el = document.createElement("div");
    el.className = "line notice";
    el.appendChild(stamp({}));
    var span = document.createElement("span");
    span.className = "text";
    span.textContent = "You left the chat.";
    var b = document.createElement("button");
    b.type = "button";
    b.className = "rejoin";
    b.textContent = "Rejoin";
    b.addEventListener("click", function () {
      b.disabled = true;
      connect();
      input.focus();
    });
    span.appendChild(b);
    el.appendChild(span);
    render([{ make: function () { return el; } }]);
  }

  function send(obj) {
    if (!state.ws || !state.online || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(obj));
    // An error is about the request for earlier lines only if nothing
    // else went after it (see handle).
    if (state.loading && obj.type !== "history") state.loading.sentAfter = true;
    return true;
  }

  function setStatus(s, text) {
    statusEl.dataset.state = s;
    $("status-count").textContent = "";
    if (statusText.textContent !== text) statusText.textContent = text;
    var btn = document.querySelector("#send-form button");
    if (btn) btn.disabled = s !== "online";
  }

  // --- Frames and events ---------------------------------------------------

  // frame handles one message from the server: each event on its own, so
  // that one bad event costs only itself, then draws what they made.
  function frame(data) {
    var parsed;
    try { parsed = JSON.parse(data); } catch (e) { return; }
    var list = Array.isArray(parsed) ? parsed : [parsed];
    // above: lines that go in #past, above the others (the room's first
    // history, or a page of earlier lines); loaded: how many lines a page
    // of earlier lines brought, or -1.
    var out = { items: [], above: null, loaded: -1, members: false, mention: null, skipped: 0 };
    // Lines far from the end of a huge frame would not be drawn: they are
    // only counted. Everything else is handled, in order.
    var cut = list.length - FRAME_LINES;
    for (var i = 0; i < list.length; i++) {
      var ev = list[i];
      if (i < cut && ev && (ev.type === "message" || ev.type === "action")) {
        out.skipped++;
        if (ev.from !== state.me) countUnread(1);
        continue;
      }
      try {
        handle(ev, out);
      } catch (e) {
        // A malformed event is dropped; the rest of the frame goes on.
      }
    }
    if (out.members) renderMembers();
    render(out.items, out.skipped);
    if (out.above) prepend(out.above, out.loaded >= 0);
    if (out.loaded >= 0) loadedEarlier(out.loaded);
    unreadNow();
    if (out.mention) mentioned(out.mention);
  }

  function isEvent(ev) {
    return ev !== null && typeof ev === "object" && !Array.isArray(ev) && typeof ev.type === "string";
  }

  // handle applies one event of a frame to the page's state and adds the
  // lines it shows to out.items. A history or batch event holds lines
  // only (see says): never another history or batch.
  function handle(ev, out) {
    if (!isEvent(ev)) return;
    switch (ev.type) {
      case "hello": hello(ev, out); break;
      case "history": {
        if (!Array.isArray(ev.events)) return;
        var more = typeof ev.more === "boolean" ? ev.more : null;
        // The history a hello brings comes before who is here; one that
        // comes later, with no request out, is still taken as it.
        if (!state.replayNext && (state.loading || state.typedHistory || state.replayed)) {
          earlierLines(ev, more, out);
          return;
        }
        // The history a hello brings: on a new room, the start of its
        // past; after a reconnect, what may have been missed, below.
        state.replayNext = false;
        state.replayed = true;
        if (state.replayAbove) {
          state.more = more;
          var above = { items: [] };
          says(ev.events, above, true, JOINED);
          if (above.items.length) {
            above.items.push({ make: function () { return divider("Now"); } });
            out.above = above.items;
          }
          updateEarlier();
          return;
        }
        if (state.more === null) state.more = more;
        updateEarlier();
        var fresh = ev.events.filter(function (h) { return isEvent(h) && !state.seen.has(key(h)); });
        if (!fresh.length) return;
        var room = state.room;
        out.items.push({ make: function () { return divider("Earlier in #" + room); } });
        says(fresh, out, true, JOINED);
        out.items.push({ make: function () { return divider("Now"); } });
        break;
      }
      case "batch":
        // Lines one member sent at once, such as a message written on
        // several lines.
        if (!Array.isArray(ev.events)) return;
        says(ev.events, out, false, 0);
        break;
      case "presence": {
        if (!Array.isArray(ev.names)) return;
        // Who is here ends what a join sends: no history is coming.
        if (state.replayNext) {
          state.replayNext = false;
          updateEarlier();
        }
        var names = ev.names.filter(function (n) { return typeof n === "string"; });
        state.members.clear();
        names.forEach(addMember);
        state.registered = new Set((Array.isArray(ev.registered) ? ev.registered : []).filter(function (n) {
          return typeof n === "string";
        }).map(function (n) { return n.toLowerCase(); }));
        state.verified = new Set((Array.isArray(ev.verified) ? ev.verified : []).filter(function (n) {
          return typeof n === "string";
        }).map(function (n) { return n.toLowerCase(); }));
        state.count = typeof ev.count === "number" && ev.count >= 0 ? ev.count : state.members.size;
        out.members = true;
        if (state.lastWho) {
          state.lastWho = false;
          var more = state.count > names.length ? " and " + (state.count - names.length) + " more" : "";
          out.items.push(notice(ev, state.count + " in " + str(ev.room) + ": " + names.join(", ") + more));
        }
        break;
      }
      case "message":
        if (remember(ev)) chat(ev, "", str(ev.text), out, false);
        break;
      case "action":
        if (remember(ev)) chat(ev, "action", str(ev.text), out, false);
        break;
      case "private": privateLine(ev, out); break;
      case "join":
        if (!str(ev.from)) return;
        addMember(ev.from);
        state.count++;
        out.members = true;
        if (ev.from !== state.me) out.items.push(notice(ev, ev.from + " joined"));
        break;
      case "leave":
        if (!str(ev.from)) return;
        removeMember(ev.from);
        state.count = Math.max(0, state.count - 1);
        out.members = true;
        out.items.push(notice(ev, ev.from + " left" + (str(ev.text) ? " (" + ev.text + ")" : "")));
        break;
      case "nick":
        if (!str(ev.from) || !str(ev.to)) return;
        removeMember(ev.from);
        addMember(ev.to);
        out.members = true;
        if (ev.from === state.me) {
          setMe(ev.to);
          storeNick(ev.to);
          out.items.push(notice(ev, "You are now known as " + ev.to));
        } else {
          out.items.push(notice(ev, ev.from + " is now known as " + ev.to));
        }
        break;
      case "delete": {
        // An operator removed lines: they go from the transcript in
        // place, without a word.
        var gone = new Set((Array.isArray(ev.ids) ? ev.ids : [ev.id]).filter(function (id) { return typeof id === "string" && id; }));
        Array.prototype.forEach.call(document.querySelectorAll("#transcript .line[data-id]"), function (el) {
          if (gone.has(el.dataset.id)) el.remove();
        });
        break;
      }
      case "topic":
        topic(str(ev.text));
        out.items.push(notice(ev, str(ev.from) + (str(ev.text) ? " set the topic: " + ev.text : " cleared the topic")));
        break;
      case "error":
        if (state.loading && !state.loading.sentAfter) {
          // The answer to the request for earlier lines, the last
          // thing sent: shown where it was asked.
          failEarlier(str(ev.text) || "refused by the server");
          return;
        }
        refused(str(ev.text));
        out.items.push(line(ev, "error", str(ev.text)));
        break;
      default: // system and anything newer than this page
        if (str(ev.text)) out.items.push(notice(ev, ev.text));
    }
  }

  function hello(ev, out) {
    var room = str(ev.room).replace(/^#/, "");
    if (!ROOM_RE.test(room) || !NAME_RE.test(str(ev.to))) return;
    // A new room starts the transcript afresh, its past above; a
    // reconnect to the same room adds below what the page has.
    var fresh = state.room.toLowerCase() !== room.toLowerCase();
    if (fresh && state.room) clearTranscript();
    if (fresh) {
      state.more = null;
      state.failed = "";
    }
    if (state.loading) {
      // Its answer went with the connection, or with the room.
      clearTimeout(state.loading.timer);
      state.loading = null;
    }
    state.replayNext = true;
    state.replayed = false;
    state.typedHistory = false;
    state.replayAbove = fresh;
    state.online = true;
    state.retry = 0;
    outageOver();
    setMe(ev.to);
    state.room = room;
    state.members.clear();
    state.count = 0;
    out.members = true;
    setStale(false);
    setStatus("online", "Connected");
    $("room-name").textContent = "#" + room;
    $("room").value = room;
    $("full-page").href = "/?room=" + encodeURIComponent(room);
    input.placeholder = embedded ? "Message #" + room : "Message, or /help for commands";
    titleNow();
    updateURL();
    updateSnippet();
    // The embed welcomes in its own words: its readers did not come to
    // learn commands.
    var text = str(ev.text);
    if (embedded) text = state.welcomed ? "You are now in #" + room + " as " + ev.to + "." : "Welcome, " + ev.to + "! You are in #" + room + ".";
    state.welcomed = true;
    out.items.push(notice(ev, text));
    topic(str(ev.topic));
    if (str(ev.topic)) out.items.push(notice(ev, "Topic: " + ev.topic));
    updateEarlier();
    post({ type: "ready", room: room });
  }

  // topic shows the room's topic in the header, as a tooltip of the
  // room's name and after it; "" for none.
  function topic(text) {
    var el = $("room-name");
    el.title = text;
    el.dataset.topic = text;
  }

  function privateLine(ev, out) {
    var from = str(ev.from), to = str(ev.to);
    if (!from || !to) return;
    if (ev.echo) settled(str(ev.text));
    var live = !ev.echo;
    out.items.push({ make: function () { return privateNode(ev, from, to); }, live: live });
    if (live) {
      countUnread(1);
      out.mention = { from: from, text: str(ev.text), private: true };
    }
  }

  function privateNode(ev, from, to) {
    var el = document.createElement("div");
    el.className = "line private";
    el.appendChild(stamp(ev));
    var body = document.createElement("span");
    var tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = "private";
    body.appendChild(tag);
    var who = document.createElement("span");
    who.className = "from " + nameClass(ev.echo ? to : from);
    who.textContent = ev.echo ? "→ " + to : from;
    body.appendChild(who);
    var text = document.createElement("span");
    text.className = "text";
    rich(text, str(ev.text));
    body.appendChild(text);
    el.appendChild(body);
    return el;
  }

  function key(ev) { return str(ev.time) + "\u0000" + str(ev.from) + "\u0000" + str(ev.text); }

  function remember(ev) {
    var k = key(ev);
    if (state.seen.has(k)) return false;
    state.seen.add(k);
    if (state.seen.size > 4 * MAX_LINES) state.seen = new Set(Array.from(state.seen).slice(-2 * MAX_LINES));
    return true;
  }

  function setMe(name) {
    state.me = name;
    $("nick").value = name;
    var esc = name.replace(/[-_]/g, "\\$&");
    state.mentionRe = new RegExp("(^|[^A-Za-z0-9_-])" + esc + "(?![A-Za-z0-9_-])", "i");
  }

  function addMember(name) {
    if (typeof name === "string" && name) state.members.set(name.toLowerCase(), name);
  }
  function removeMember(name) {
    if (typeof name === "string" && name) state.members.delete(name.toLowerCase());
  }

  function renderMembers() {
    var ul = $("members");
    var names = Array.from(state.members.values()).sort(function (a, b) {
      a = a.toLowerCase();
      b = b.toLowerCase();
      return a < b ? -1 : a > b ? 1 : 0;
    });
    var frag = document.createDocumentFragment();
    names.slice(0, MAX_MEMBERS_SHOWN).forEach(function (n) {
      var li = document.createElement("li");
      li.textContent = n;
      if (state.registered.has(n.toLowerCase())) {
        // A registered name: only its owner can use it.
        li.textContent = n + " \u2713";
        li.title = "registered";
      }
      if (n === state.me) {
        li.className = "me";
        li.title = "you";
      }
      if (state.verified.has(n.toLowerCase())) {
        // A name the site that shows the chat signed in.
        li.textContent = n + " \u2713";
        li.classList.add("verified");
        if (n !== state.me) li.title = "signed in";
      }
      frag.appendChild(li);
    });
    var total = Math.max(state.count, names.length);
    if (total > MAX_MEMBERS_SHOWN && names.length > MAX_MEMBERS_SHOWN) {
      var li = document.createElement("li");
      li.textContent = "and " + (total - MAX_MEMBERS_SHOWN) + " more";
      frag.appendChild(li);
    }
    ul.replaceChildren(frag);
    $("member-count").textContent = "(" + total + ")";
  }

  // setStale marks the member list as what it was when the connection
  // went, until a hello comes.
  function setStale(stale) {
    $("people").classList.toggle("stale", stale);
    var note = $("stale");
    note.hidden = !stale;
    if (stale) note.textContent = "As of " + timeFmt.format(new Date()) + ": offline, this may have changed.";
  }

  // --- Lines --------------------------------------------------------------

  function stamp(ev) {
    var t = document.createElement("time");
    var d = typeof ev.time === "string" ? new Date(ev.time) : null;
    if (!d || isNaN(d.getTime())) d = new Date();
    t.dateTime = d.toISOString();
    t.textContent = clock(d);
    return t;
  }

  // clock formats a time as the reader's locale does, once a minute.
  var lastMinute = -1, lastClock = "";
  function clock(d) {
    var m = Math.floor(d.getTime() / 60000);
    if (m !== lastMinute) {
      lastMinute = m;
      lastClock = timeFmt.format(d);
    }
    return lastClock;
  }

  // nameClass gives each name one of twelve colours, the same for the same
  // name (in any case) wherever it shows.
  function nameClass(name) {
    var h = 2166136261;
    var s = name.toLowerCase();
    for (var i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 16777619);
    }
    return "n" + ((h >>> 0) % 12);
  }

  // says shows the lines of a batch or a history: a run of messages from
  // one sender is one entry, as it was written (a fenced code block across
  // them too). A history keeps lines one by one, so there a run must also
  // have been said together: each line within joined ms of the one before.
  // Earlier lines (older) are not remembered as seen: they are older than
  // anything a reconnect brings, and the caller checks them against the
  // lines on the page.
  function says(list, out, fromHistory, joined, older) {
    var run = [];
    var flush = function () {
      if (run.length) chat(run[0], "", run.map(function (r) { return str(r.text); }).join("\n"), out, fromHistory, run.length);
      run = [];
    };
    list.forEach(function (h) {
      if (!isEvent(h) || (h.type !== "message" && h.type !== "action") || !older && !remember(h)) return;
      if (h.type === "action") {
        flush();
        chat(h, "action", str(h.text), out, fromHistory, 1);
        return;
      }
      var prev = run[run.length - 1];
      if (prev && (prev.from !== h.from || joined && !(Math.abs(Date.parse(str(h.time)) - Date.parse(str(prev.time))) <= joined))) flush();
      run.push(h);
    });
    flush();
  }

  // chat adds a message or action of lines lines (a run of a batch).
  function chat(ev, kind, text, out, fromHistory, lines) {
    var from = str(ev.from);
    if (!from) return;
    var mine = from === state.me;
    var mention = !mine && !fromHistory && !!state.mentionRe && state.mentionRe.test(text);
    var live = !fromHistory && !mine;
    out.items.push({ make: function () { return chatNode(ev, kind, from, text, mine, mention); }, live: live, mine: mine && !fromHistory });
    if (mine) settled(text);
    if (live) countUnread(lines || 1);
    if (mention) out.mention = { from: from, text: text };
  }

  function chatNode(ev, kind, from, text, mine, mention) {
    var el = document.createElement("div");
    el.className = "line" + (kind ? " " + kind : "") + (mine ? " mine" : "") + (mention ? " mention" : "");
    // The oldest line on the page with an id is where earlier lines
    // are asked from (an entry of several lines has its first's), and
    // what a delete event names.
    if (typeof ev.id === "string" && ev.id && ev.id.length <= 80) el.dataset.id = ev.id;
    el.appendChild(stamp(ev));
    var body = document.createElement("span");
    var who = document.createElement("span");
    who.className = "from " + nameClass(from);
    who.textContent = kind === "action" ? "* " + from : from;
    body.appendChild(who);
    var t = document.createElement("span");
    t.className = "text";
    rich(t, text);
    body.appendChild(t);
    el.appendChild(body);
    return el;
  }

  // line is an item of a line of kind (notice, error) saying text.
  function line(ev, kind, text) {
    return { make: function () { return lineNode(ev, kind, text); } };
  }

  function lineNode(ev, kind, text) {
    var el = document.createElement("div");
    el.className = "line " + kind;
    el.appendChild(stamp(ev));
    var body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    el.appendChild(body);
    return el;
  }

  function notice(ev, text) { return line(ev, "notice", text); }

  function divider(text) {
    var el = document.createElement("div");
    el.className = "line divider";
    el.textContent = text;
    return el;
  }

  // rich puts text into el: ```fenced``` blocks and `code` spans as code,
  // http(s) URLs outside code as links, everything else as text.
  function rich(el, text) {
    if (text.indexOf("`") < 0 && text.indexOf("://") < 0) {
      el.textContent = text;
      return;
    }
    var fence = /```(?:[A-Za-z0-9_+.-]*\n)?([\s\S]*?)```/g;
    var at = 0, m;
    while ((m = fence.exec(text)) !== null) {
      inline(el, text.slice(at, m.index));
      var pre = document.createElement("pre");
      var code = document.createElement("code");
      code.textContent = m[1].replace(/\n$/, "");
      pre.appendChild(code);
      el.appendChild(pre);
      at = fence.lastIndex;
    }
    inline(el, text.slice(at));
  }

  function inline(el, text) {
    var re = /`([^`\n]+)`/g;
    var at = 0, m;
    while ((m = re.exec(text)) !== null) {
      links(el, text.slice(at, m.index));
      var code = document.createElement("code");
      code.textContent = m[1];
      el.appendChild(code);
      at = re.lastIndex;
    }
    links(el, text.slice(at));
  }

  var URL_RE = /\bhttps?:\/\/[^\s<>"'`\u0000-\u001f\u007f]+/gi;

  function links(el, text) {
    if (!text) return;
    var at = 0, m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text)) !== null) {
      var url = trimURL(m[0]);
      var u = null;
      try { u = new URL(url); } catch (e) { /* not a URL after all */ }
      if (!u || (u.protocol !== "http:" && u.protocol !== "https:")) continue;
      el.appendChild(document.createTextNode(text.slice(at, m.index)));
      var a = document.createElement("a");
      a.href = u.href;
      a.target = "_blank";
      a.rel = "noopener noreferrer nofollow ugc";
      a.textContent = url;
      el.appendChild(a);
      at = m.index + url.length;
      URL_RE.lastIndex = at;
    }
    el.appendChild(document.createTextNode(text.slice(at)));
  }

  // trimURL takes off what ends a sentence rather than the URL: trailing
  // punctuation, and closing brackets the URL did not open.
  function trimURL(u) {
    for (;;) {
      var c = u.charAt(u.length - 1);
      if (".,;:!?*_~".indexOf(c) >= 0) {
        u = u.slice(0, -1);
        continue;
      }
      var open = { ")": "(", "]": "[", "}": "{" }[c];
      if (open && u.split(open).length <= u.split(c).length - 1) {
        u = u.slice(0, -1);
        continue;
      }
      return u;
    }
  }

  // --- Drawing --------------------------------------------------------------

  // render adds items, in order, to the transcript: only the last
  // FRAME_LINES of them (the others are never made), one fragment, one
  // trim, one scroll.
  function render(items, before) {
    if (!items.length && !before) return;
    // With a note of what was left out, one line fewer is drawn.
    var keep = before || items.length > FRAME_LINES ? FRAME_LINES - 1 : FRAME_LINES;
    var skipped = (before || 0) + Math.max(0, items.length - keep);
    var frag = document.createDocumentFragment();
    if (skipped) {
      var note = document.createElement("div");
      note.className = "line skipped";
      note.textContent = skipped.toLocaleString() + " earlier lines came at once and are not shown.";
      frag.appendChild(note);
      items = items.slice(Math.max(0, items.length - keep));
    }
    var stick = state.atBottom;
    var firstLive = null, live = 0, mine = false;
    for (var i = 0; i < items.length; i++) {
      var node = items[i].make();
      if (items[i].live) {
        live++;
        if (!firstLive) firstLive = node;
      }
      if (items[i].mine) mine = true;
      var d = dayOf(node);
      if (d && dayKey(d) !== state.lastDay) {
        var div = dayDivider(d);
        if (!state.lastDay) state.topDivider = div;
        state.lastDay = dayKey(d);
        frag.appendChild(div);
      }
      frag.appendChild(node);
    }
    if (mine) stick = true;
    if (!stick && (live || skipped)) {
      // The reader is scrolled up: mark where the new lines start, once
      // for everything they have not scrolled down to.
      if (!state.unseen || !state.marker || !state.marker.isConnected) {
        if (state.marker) state.marker.remove();
        state.marker = document.createElement("div");
        state.marker.className = "line marker";
        var label = document.createElement("span");
        label.textContent = "New messages";
        state.marker.appendChild(label);
        frag.insertBefore(state.marker, skipped ? frag.firstChild : firstLive || frag.firstChild);
      }
      state.unseen += live + skipped;
    }
    var empty = transcript.querySelector(".empty");
    if (empty) empty.remove();
    transcript.appendChild(frag);
    trim(stick);
    if (stick) {
      scrollToEnd();
    } else if (state.unseen) {
      var j = $("jump");
      j.textContent = state.unseen.toLocaleString() + " new message" + (state.unseen === 1 ? "" : "s") + " ↓";
      j.hidden = false;
    }
    heightChanged();
  }

  // lineCount is how many lines (and dividers) the transcript holds.
  function lineCount() {
    return past.childElementCount - 1 + transcript.childElementCount - 1;
  }

  // trim keeps the transcript within its limit, taking its oldest lines
  // (in #past first); a reader scrolled up keeps what they look at.
  function trim(stick) {
    var excess = lineCount() - state.limit;
    if (excess <= 0) return;
    var keep = stick ? null : anchor();
    var r = document.createRange();
    var n = Math.min(excess, past.childElementCount - 1);
    if (n > 0) {
      r.setStartAfter(past.firstElementChild);
      r.setEndAfter(past.children[n]);
      r.deleteContents();
      excess -= n;
    }
    if (excess > 0) {
      r.setStartAfter(past);
      r.setEndAfter(transcript.children[excess]);
      r.deleteContents();
    }
    // Lines were taken from the top: there are earlier ones again.
    if (state.more !== null) state.more = true;
    if (!state.topDivider || !state.topDivider.isConnected) topDay();
    updateEarlier(); // the row above may change height: before keep
    if (keep) keep();
  }

  // anchor notes where the first line in view is, and returns a function
  // that scrolls it back there after lines above it came or went. (Done
  // here, not by the browser's scroll anchoring: .transcript has
  // overflow-anchor: none, so that it is done once, the same everywhere.)
  function anchor() {
    var top = transcript.getBoundingClientRect().top;
    // Not a day divider: the one at the top goes when lines of its day
    // come above it.
    var lines = transcript.querySelectorAll(".line:not(.day)");
    for (var i = 0; i < lines.length; i++) {
      var at = lines[i].getBoundingClientRect().top;
      if (lines[i].getBoundingClientRect().bottom > top) {
        var el = lines[i];
        return function () {
          if (el.isConnected) transcript.scrollTop += el.getBoundingClientRect().top - at;
        };
      }
    }
    return null;
  }

  function scrollToEnd() {
    transcript.scrollTop = transcript.scrollHeight;
    state.atBottom = true;
    state.unseen = 0;
    state.limit = MAX_LINES;
    $("jump").hidden = true;
  }

  function onScroll() {
    var top = transcript.scrollTop;
    var near = transcript.scrollHeight - top - transcript.clientHeight < 40;
    state.atBottom = near;
    if (near) {
      // Back at the end: lines loaded earlier may go again, as new ones
      // come.
      state.limit = MAX_LINES;
      if (state.unseen) {
        state.unseen = 0;
        $("jump").hidden = true;
      }
    }
    // Scrolling up, near the top, fetches earlier lines (not when the
    // page scrolls itself down, or after a failure: then the reader
    // asks again with the button).
    if (top < state.lastTop && top < transcript.clientHeight / 2 && !state.failed) loadEarlier();
    state.lastTop = top;
  }

  // --- Scrollback ------------------------------------------------------------

  // dayOf returns the time of a line, or null for a node that has none
  // (a divider, a note).
  function dayOf(node) {
    var t = node.firstElementChild;
    if (!t || t.tagName !== "TIME") return null;
    var d = new Date(t.dateTime);
    return isNaN(d.getTime()) ? null : d;
  }

  // dayKey names the reader's local day of d.
  function dayKey(d) { return d.getFullYear() + "-" + (d.getMonth() + 1) + "-" + d.getDate(); }

  function dayDivider(d) {
    var el = document.createElement("div");
    el.className = "line day";
    el.dataset.day = dayKey(d);
    var label = document.createElement("span");
    label.textContent = (d.getFullYear() === new Date().getFullYear() ? dayFmt : dayYearFmt).format(d);
    el.appendChild(label);
    return el;
  }

  // topDay puts a day divider above the first line with a time, when
  // the one that was there went with the lines trimmed.
  function topDay() {
    state.topDivider = null;
    var t = transcript.querySelector(".line > time");
    if (!t) return;
    var line = t.parentNode, prev = line.previousElementSibling;
    if (prev && prev.classList.contains("day")) {
      state.topDivider = prev;
      return;
    }
    state.topDivider = dayDivider(new Date(t.dateTime));
    line.parentNode.insertBefore(state.topDivider, line);
  }

  // prepend puts items above every line (in #past, after its row): one
  // fragment, with its days. The first line in view stays where it was,
  // unless the reader was at the end of a room just joined.
  function prepend(items, loaded) {
    var frag = document.createDocumentFragment();
    var day = "", first = null;
    for (var i = 0; i < items.length; i++) {
      var node = items[i].make();
      var d = dayOf(node);
      if (d && dayKey(d) !== day) {
        var div = dayDivider(d);
        if (!first) first = div;
        day = dayKey(d);
        frag.appendChild(div);
      }
      frag.appendChild(node);
    }
    if (!frag.firstChild) return;
    var stick = state.atBottom && !loaded;
    var keep = stick ? null : anchor();
    var empty = transcript.querySelector(".empty");
    if (empty) empty.remove();
    if (first) {
      // The divider that topped the page goes if its day is the day the
      // new lines end with.
      if (state.topDivider && state.topDivider.isConnected && state.topDivider.dataset.day === day) state.topDivider.remove();
      state.topDivider = first;
      if (!state.lastDay) state.lastDay = day;
    }
    past.insertBefore(frag, past.firstElementChild.nextSibling);
    state.limit = Math.max(state.limit, lineCount());
    updateEarlier(); // the row above may change height: before keep
    if (stick) scrollToEnd();
    else if (keep) keep();
    state.lastTop = transcript.scrollTop;
    heightChanged();
  }

  // loadEarlier asks for the lines before the oldest on the page: one
  // request at a time, within the server's rate (see ASK_BURST).
  function loadEarlier() {
    if (state.loading || state.more !== true || state.replayNext || lineCount() >= MAX_SCROLLBACK) return;
    state.failed = "";
    var wait = spendAsk();
    var ask = function () {
      var oldest = transcript.querySelector("[data-id]");
      var msg = { type: "history" };
      if (oldest) msg.before = oldest.dataset.id;
      msg.limit = PAGE;
      if (!send(msg)) {
        failEarlier("not connected");
        return;
      }
      state.loading.timer = setTimeout(function () { failEarlier("no answer from the server"); }, ANSWER_WAIT);
    };
    // Out from now, though maybe sent later: one at a time either way.
    state.loading = { sentAfter: false, timer: 0 };
    if (wait) state.loading.timer = setTimeout(ask, wait);
    else ask();
    updateEarlier();
  }

  // spendAsk counts a request for earlier lines against the server's
  // rate, and returns how long to wait before sending it.
  function spendAsk() {
    var now = Date.now();
    state.asks = Math.min(ASK_BURST, state.asks + (now - state.askedAt) / ASK_EVERY);
    state.askedAt = now;
    var wait = state.asks >= 1 ? 0 : (1 - state.asks) * ASK_EVERY;
    state.asks -= 1;
    return wait;
  }

  // earlierLines takes the answer to loadEarlier: lines of this room,
  // none of them on the page already, go above.
  function earlierLines(ev, more, out) {
    var room = str(ev.room).replace(/^#/, "").toLowerCase();
    if (!state.loading && !state.typedHistory || room !== state.room.toLowerCase()) return;
    // The page's request is answered first: the server takes requests in
    // order, and the page sends none while one is out.
    var typed = !state.loading;
    if (typed) state.typedHistory = false;
    else {
      clearTimeout(state.loading.timer);
      state.loading = null;
    }
    var shown = new Set();
    transcript.querySelectorAll("[data-id]").forEach(function (el) { shown.add(el.dataset.id); });
    var lines = ev.events.filter(function (h) {
      if (!isEvent(h) || typeof h.id !== "string") return isEvent(h);
      if (shown.has(h.id)) return false;
      shown.add(h.id);
      return true;
    });
    var above = { items: [] };
    says(lines, above, true, JOINED, true);
    state.more = more === null ? above.items.length > 0 : more;
    out.above = above.items;
    out.loaded = lines.filter(function (h) { return h.type === "message" || h.type === "action"; }).length;
    // A typed /history is answered where the reader typed it.
    if (typed) out.items.push(notice({}, loadedText(out.loaded) + (out.loaded ? " They are above." : "")));
  }

  // loadedEarlier says what a page of earlier lines brought.
  function loadedEarlier(n) {
    $("earlier-status").textContent = loadedText(n);
    updateEarlier();
  }

  function loadedText(n) {
    var text = n ? "Loaded " + n.toLocaleString() + " earlier message" + (n === 1 ? "" : "s") + "." : "No earlier messages.";
    if (state.more === false) text += " This is the start of #" + state.room + ".";
    return text;
  }

  function failEarlier(why) {
    if (state.loading) clearTimeout(state.loading.timer);
    state.loading = null;
    state.failed = why;
    $("earlier-status").textContent = "Could not load earlier messages: " + why + ".";
    updateEarlier();
  }

  // updateEarlier shows, first in the log, what can be had above: a
  // button while there are earlier lines, a quiet note at the start.
  function updateEarlier() {
    var row = $("earlier-row"), btn = $("earlier"), note = $("earlier-note");
    var had = document.activeElement === btn;
    var full = lineCount() >= MAX_SCROLLBACK;
    row.hidden = state.more === null && !state.failed;
    btn.hidden = !state.failed && (state.more !== true || full);
    btn.textContent = state.failed ? "Try again" : state.loading ? "Loading earlier messages…" : "Load earlier messages";
    var busy = !!state.loading || state.replayNext || !state.online;
    btn.setAttribute("aria-disabled", busy ? "true" : "false");
    var text = state.failed ? "Could not load earlier messages: " + state.failed + "."
      : state.more === false ? "This is the start of #" + state.room + "."
      : state.more && full ? "The page keeps " + MAX_SCROLLBACK.toLocaleString() + " lines: earlier ones are not shown."
      : "";
    note.textContent = text;
    note.hidden = !text;
    note.classList.toggle("failed", !!state.failed);
    // The focus stays at the top, not the view: the reader reads on where
    // they were.
    if (had && btn.hidden) note.focus({ preventScroll: true });
  }

  // clearTranscript empties the transcript for another room.
  function clearTranscript() {
    var r = document.createRange();
    r.setStartAfter(past.firstElementChild);
    r.setEndAfter(past.lastChild);
    r.deleteContents();
    r.setStartAfter(past);
    r.setEndAfter(transcript.lastChild);
    r.deleteContents();
    state.seen = new Set();
    state.marker = null;
    state.unseen = 0;
    state.lastDay = "";
    state.topDivider = null;
    state.limit = MAX_LINES;
    $("jump").hidden = true;
  }

  // --- Unread lines, mentions, notifications -------------------------------

  // countUnread counts a line the reader may not have seen; frame tells
  // the title and the embedding page once for all of a frame's lines.
  function countUnread(n) {
    if (document.hidden) {
      state.unreadTitle += n;
      state.unreadChanged = true;
    }
    if (embedded && !seen()) {
      state.unreadEmbed += n;
      state.unreadChanged = true;
    }
  }

  function unreadNow() {
    if (!state.unreadChanged) return;
    state.unreadChanged = false;
    titleNow();
    if (embedded && state.unreadEmbed) post({ type: "unread", count: state.unreadEmbed, room: state.room });
  }

  // seen reports whether the embed is where its reader can see it.
  function seen() { return !document.hidden && state.inView; }

  function titleNow() {
    var t = state.room ? "#" + state.room + " · chatbridge" : "chatbridge";
    document.title = state.unreadTitle ? "(" + state.unreadTitle + ") " + t : t;
  }

  function looked() {
    if (!document.hidden && state.unreadTitle) {
      state.unreadTitle = 0;
      titleNow();
    }
    if (embedded && seen() && state.unreadEmbed) {
      state.unreadEmbed = 0;
      post({ type: "unread", count: 0, room: state.room });
    }
  }

  function mentioned(m) {
    post({ type: "mention", from: m.from, room: state.room, private: !!m.private });
    // The embed leaves notifying to the page around it, which hears of
    // the mention.
    if (embedded || !notifyOn() || (!document.hidden && document.hasFocus())) return;
    try {
      var n = new Notification(m.private ? m.from + " (private)" : m.from + " in #" + state.room, {
        body: m.text.slice(0, 200), tag: "chatbridge-mention", icon: "/icon-192.png",
      });
      n.onclick = function () { window.focus(); n.close(); };
    } catch (e) { /* not allowed here */ }
  }

  function notifyOn() {
    try {
      return "Notification" in window && Notification.permission === "granted" && localStorage.getItem(NOTIFY_KEY) === "1";
    } catch (e) { return false; }
  }

  // --- Sending --------------------------------------------------------------

  function submit() {
    var text = input.value;
    if (!text.trim()) return;
    if (!state.online) {
      sendError("Not connected: your message is still here, and goes when you send it again once connected.");
      return;
    }
    var lines = text.replace(/\r\n?/g, "\n").split("\n");
    while (lines.length > 1 && !lines[lines.length - 1].trim()) lines.pop();
    var first = lines[0];
    var isCommand = first.charAt(0) === "/" && first.charAt(1) !== "/";
    if (isCommand && lines.length > 1) {
      sendError("A command is one line: send it on its own.");
      return;
    }
    // "//etc" says "/etc", as on telnet.
    lines = lines.map(function (l) { return l.replace(/^\/\//, "/"); });
    if (isCommand && /^\/(who|names)\b/i.test(first)) state.lastWho = true;
    if (isCommand && /^\/history\b/i.test(first)) {
      state.typedHistory = true;
      spendAsk(); // sent at once: the server says if it is too soon
    }
    var msg = isCommand ? { type: "command", text: first } : { type: "message", text: lines.join("\n") };
    if (!send(msg)) {
      sendError("Not connected: your message is still here.");
      return;
    }
    state.pending = { text: text, last: lines[lines.length - 1], at: Date.now(), command: isCommand };
    input.value = "";
    fit();
    sendError("");
    if (state.marker) {
      state.marker.remove();
      state.marker = null;
    }
    scrollToEnd();
  }

  // settled forgets the pending send once its own line comes back.
  function settled(text) {
    var p = state.pending;
    if (p && !p.command && (text === p.last || text.slice(-p.last.length - 1) === "\n" + p.last)) state.pending = null;
  }

  // refused puts a send the server refused back in the box, with why.
  function refused(why) {
    var p = state.pending;
    if (!p || Date.now() - p.at > PENDING_FOR) return;
    state.pending = null;
    if (!input.value) {
      input.value = p.text;
      fit();
    }
    sendError("Not sent: " + why);
  }

  function sendError(text) { $("send-error").textContent = text; }

  // fit grows the box with its text, up to its max-height.
  function fit() {
    input.style.height = "auto";
    if (input.value) input.style.height = input.scrollHeight + 2 + "px";
  }

  // --- The page around it ---------------------------------------------------

  function updateURL() {
    if (embedded) return;
    var u = new URL(location.href);
    u.searchParams.set("room", state.room);
    history.replaceState(null, "", u);
  }

  function attr(s) {
    return s.replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; });
  }

  // updateSnippet fills the embed snippet from the room the server
  // confirmed, never from the address bar.
  function updateSnippet() {
    var ta = $("snippet");
    var room = state.room;
    if (!ROOM_RE.test(room)) {
      ta.value = "";
      return;
    }
    var origin = attr(location.origin);
    room = attr(room);
    var meta = document.querySelector('meta[name="chatbridge-embed-script"]');
    var path = meta ? meta.content : "", sri = meta ? meta.dataset.integrity || "" : "";
    var haveSRI = /^\/embed\.[0-9a-f]{16}\.js$/.test(path) && /^sha384-[A-Za-z0-9+\/]{64}$/.test(sri);
    $("kind-sri").hidden = !haveSRI;
    var kind = (document.querySelector('input[name="snippet-kind"]:checked') || {}).value;
    if (kind === "sri" && haveSRI) {
      ta.value = '<script src="' + origin + path + '" integrity="' + sri + '" crossorigin="anonymous" data-room="' + room + '" data-height="400"></' + "script>";
    } else if (kind === "iframe") {
      ta.value = '<iframe src="' + origin + "/embed?room=" + room + '" title="Chat: #' + room + '" class="chatbridge-embed" width="100%" height="400" loading="lazy"></iframe>';
    } else {
      ta.value = '<script src="' + origin + '/embed.js" data-room="' + room + '" data-height="400"></' + "script>";
    }
  }

  // heightChanged tells an embed of data-height="auto" how tall its
  // content would like to be; embed.js keeps it within its bounds.
  var lastHeight = 0;
  function heightChanged() {
    if (!autoHeight) return;
    var bar = document.querySelector(".bar").offsetHeight;
    var composer = $("send-form").offsetHeight;
    var h = bar + composer + transcript.scrollHeight + 2;
    if (Math.abs(h - lastHeight) < 8) return;
    lastHeight = h;
    post({ type: "height", height: h });
  }

  function openMenu(open) {
    menu.classList.toggle("open", open);
    menuButton.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var first = menu.querySelector("input, button, summary, a");
      if (first) first.focus();
    }
  }
  function menuOpen() { return menu.classList.contains("open"); }

  function init() {
    transcript = $("transcript");
    past = $("past");
    input = $("message");
    statusEl = $("status");
    statusText = $("status-text");
    menu = $("menu");
    menuButton = $("menu-button");
    var empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No messages yet. Say hello!";
    transcript.appendChild(empty);
    if (asked && !state.askedRoom) {
      var bad = asked.length > 40 ? asked.slice(0, 40) + "…" : asked;
      render([notice({}, "“" + bad + "” is not a room name (1-32 letters, digits, - or _): joining the default room.")]);
    }
    if (embedded) input.placeholder = "Message";
    if (launcher) $("close-button").hidden = false;
    if (!embedded && "Notification" in window) {
      $("notify-row").hidden = false;
      $("notify").checked = notifyOn();
    }

    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        submit();
      }
    });
    // Some input methods (and automation) deliver the Enter's character
    // apart from its keydown: it must not add a line after the send.
    input.addEventListener("keypress", function (e) {
      if (e.key === "Enter" && !e.shiftKey) e.preventDefault();
    });
    input.addEventListener("input", fit);
    $("send-form").addEventListener("submit", function (e) {
      e.preventDefault();
      submit();
    });
    transcript.addEventListener("scroll", onScroll, { passive: true });
    // A transcript that was at its end stays there when it changes size: a
    // phone's keyboard opening, a launcher's panel opening after lines came
    // while it was hidden.
    if ("ResizeObserver" in window) {
      new ResizeObserver(function () {
        if (state.atBottom) transcript.scrollTop = transcript.scrollHeight;
      }).observe(transcript);
    }
    $("earlier").addEventListener("click", function (e) {
      // Busy (aria-disabled rather than disabled, so that it keeps the
      // focus): the click waits for the answer.
      if (e.currentTarget.getAttribute("aria-disabled") !== "true") loadEarlier();
    });
    $("jump").addEventListener("click", function () {
      scrollToEnd();
      input.focus();
    });
    $("nick-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var n = $("nick").value.trim();
      if (n && n !== state.me) send({ type: "command", text: "/nick " + n });
      openMenu(false);
      input.focus();
    });
    $("room-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var r = $("room").value.trim().replace(/^#/, "");
      if (r && r.toLowerCase() !== state.room) send({ type: "command", text: "/join " + r });
      openMenu(false);
      input.focus();
    });
    menuButton.addEventListener("click", function () { openMenu(!menuOpen()); });
    $("close-button").addEventListener("click", function () { post({ type: "close" }); });
    document.addEventListener("keydown", function (e) {
      if (e.key !== "Escape") return;
      if (menuOpen()) {
        openMenu(false);
        menuButton.focus();
      } else if (launcher) {
        post({ type: "close" });
      }
    });
    transcript.addEventListener("click", function () { if (menuOpen()) openMenu(false); });
    $("notify").addEventListener("change", function (e) {
      var box = e.target;
      var store = function (on) {
        box.checked = on;
        try { localStorage.setItem(NOTIFY_KEY, on ? "1" : "0"); } catch (err) { /* private mode */ }
      };
      if (!box.checked) return store(false);
      Notification.requestPermission().then(function (p) {
        store(p === "granted");
        if (p !== "granted") sendError("Notifications are blocked for this site in the browser's settings.");
      });
    });
    document.querySelectorAll('input[name="snippet-kind"]').forEach(function (r) {
      r.addEventListener("change", updateSnippet);
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
    document.addEventListener("visibilitychange", looked);
    if (embedded && "IntersectionObserver" in window) {
      new IntersectionObserver(function (entries) {
        state.inView = entries[entries.length - 1].isIntersecting;
        looked();
      }).observe(transcript);
    }
    updateSnippet();
    connect();
    // The embed does not take the focus from the page around it.
    if (!embedded) input.focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
