// chatbridge embed: put
//   <script src="https://chat.example/embed.js" data-room="docs"></script>
// where the chat should appear; this script puts an iframe of that
// server's /embed page in its place. Options, all optional:
//   data-room="docs"             the room (default: the server's)
//   data-height="400"            height in pixels, 150-4000, or "auto": as
//                                tall as the chat's lines, up to
//                                data-max-height (default 600)
//   data-theme="light|dark|auto" the chat's colours (default auto: the
//                                reader's system scheme)
//   data-accent="#1f5fd6"        the colour of buttons and highlights
//   data-mode="launcher"         a button in the corner, with a count of
//                                unread lines, that opens the chat as a panel
//   data-token="JWT"             the reader, signed in by the site: a token
//                                the site signs with the server's
//                                --auth-secret (HS256, exp within 24 h),
//                                whose name claim is the reader's name
// The iframe has the class chatbridge-embed (the launcher's parts
// chatbridge-launcher, chatbridge-badge and chatbridge-panel): their
// looks come from a style sheet of no specificity, so the page's own CSS
// for those classes wins.
//
// The chat tells the page about itself with postMessage, to the page's
// origin: {source: "chatbridge", type: "ready", room}, {type: "unread",
// count, room} while it is out of sight, {type: "mention", from, room,
// private}. It takes no message from the page.
(function () {
  "use strict";
  var s = document.currentScript;
  if (!s || !s.src) return;
  var origin = new URL(s.src, location.href).origin;
  var data = function (name) { return s.getAttribute("data-" + name) || ""; };
  var room = data("room").replace(/^#/, "");
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(room)) room = "";
  var theme = data("theme");
  var accent = data("accent");
  if (!/^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/.test(accent)) accent = "";
  var launcher = data("mode") === "launcher";
  // In the fragment: it goes to the chat page only, never in a request
  // for it nor in a Referer.
  var token = data("token");
  if (!/^[A-Za-z0-9_.-]{1,4096}$/.test(token)) token = "";
  var auto = data("height") === "auto";
  var height = parseInt(data("height"), 10);
  if (!(height >= 150 && height <= 4000)) height = 400;
  var maxHeight = parseInt(data("max-height"), 10);
  if (!(maxHeight >= 150 && maxHeight <= 4000)) maxHeight = 600;

  if (!document.getElementById("chatbridge-embed-style")) {
    var css = document.createElement("style");
    css.id = "chatbridge-embed-style";
    if (s.nonce) css.nonce = s.nonce; // a page whose CSP allows its scripts by nonce
    css.textContent =
      ":where(.chatbridge-embed){display:block;width:100%;border:1px solid #d5d8de;border-radius:8px;background:transparent}" +
      ":where(.chatbridge-launcher){position:fixed;right:16px;bottom:16px;z-index:2147483000;display:inline-flex;align-items:center;gap:8px;" +
      "padding:10px 16px;border:0;border-radius:999px;background:#1f5fd6;color:#fff;font:600 15px/1.2 system-ui,sans-serif;" +
      "box-shadow:0 2px 10px rgba(0,0,0,.3);cursor:pointer}" +
      ":where(.chatbridge-launcher:focus-visible){outline:3px solid #1b1c20;outline-offset:2px}" +
      ":where(.chatbridge-badge){min-width:20px;padding:1px 6px;border-radius:999px;background:#b3261e;color:#fff;font-size:12px;text-align:center}" +
      ":where(.chatbridge-panel){position:fixed;right:16px;bottom:72px;z-index:2147483000;" +
      "width:min(380px,calc(100vw - 32px));height:min(560px,calc(100vh - 96px));box-shadow:0 6px 28px rgba(0,0,0,.3);border-radius:8px}" +
      ":where(.chatbridge-panel .chatbridge-embed){height:100%}" +
      ":where(.chatbridge-badge[hidden],.chatbridge-panel[hidden]){display:none}";
    (document.head || document.documentElement).appendChild(css);
  }

  var q = new URLSearchParams();
  if (room) q.set("room", room);
  if (theme === "light" || theme === "dark") q.set("theme", theme);
  if (accent) q.set("accent", accent);
  if (launcher) q.set("launcher", "1");
  if (auto && !launcher) q.set("height", "auto");
  var f = document.createElement("iframe");
  f.src = origin + "/embed" + (q.toString() ? "?" + q : "") + (token ? "#token=" + token : "");
  f.title = "Chat" + (room ? ": #" + room : "");
  f.className = "chatbridge-embed";
  f.setAttribute("allow", "clipboard-write");
  // The height is an attribute, not a style: the page's CSS wins over it.
  if (!launcher) {
    f.height = auto ? 200 : height;
    f.width = "100%";
    f.setAttribute("loading", "lazy");
  }

  var button, badge, panel;
  if (launcher) {
    button = document.createElement("button");
    button.type = "button";
    button.className = "chatbridge-launcher";
    button.setAttribute("aria-expanded", "false");
    button.appendChild(document.createTextNode("Chat"));
    badge = document.createElement("span");
    badge.className = "chatbridge-badge";
    badge.hidden = true;
    button.appendChild(badge);
    if (accent) {
      button.style.background = accent;
      button.style.color = textOn(accent);
    }
    panel = document.createElement("div");
    panel.className = "chatbridge-panel";
    panel.id = "chatbridge-panel-" + Math.random().toString(36).slice(2, 10);
    panel.setAttribute("role", "region");
    panel.setAttribute("aria-label", f.title);
    panel.hidden = true;
    button.setAttribute("aria-controls", panel.id);
    button.addEventListener("click", function () { toggle(panel.hidden); });
    // The panel holds the iframe from the start, hidden, so that the
    // chat connects and can count what comes before it is opened.
    panel.appendChild(f);
    s.parentNode.insertBefore(button, s.nextSibling);
    s.parentNode.insertBefore(panel, button.nextSibling);
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && !panel.hidden) toggle(false);
    });
  } else {
    s.parentNode.insertBefore(f, s.nextSibling);
  }

  function toggle(open) {
    panel.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    button.firstChild.textContent = open ? "Close chat" : "Chat";
    if (open) f.focus();
    else button.focus();
  }

  function textOn(c) {
    var h = c.slice(1);
    if (h.length === 3) h = h.replace(/./g, "$&$&");
    var lin = function (i) {
      var v = parseInt(h.substr(i, 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    var l = 0.2126 * lin(0) + 0.7152 * lin(2) + 0.0722 * lin(4);
    return (l + 0.05) / 0.05 > 1.05 / (l + 0.05) ? "#000" : "#fff";
  }

  // Only this iframe's messages, from the chat's origin, are heard, and
  // only to size it, close its panel and show the unread count.
  window.addEventListener("message", function (e) {
    if (e.source !== f.contentWindow || e.origin !== origin) return;
    var m = e.data;
    if (!m || m.source !== "chatbridge") return;
    if (m.type === "height" && auto && !launcher && typeof m.height === "number") {
      f.height = Math.round(Math.max(150, Math.min(maxHeight, m.height)));
    } else if (m.type === "unread" && badge && typeof m.count === "number") {
      badge.textContent = m.count > 99 ? "99+" : String(Math.max(0, Math.floor(m.count)));
      badge.hidden = !(m.count > 0);
    } else if (m.type === "close" && panel && !panel.hidden) {
      toggle(false);
    }
  });
})();
