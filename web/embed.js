// chatbridge embed: put
//   <script src="https://chat.example/embed.js" data-room="docs" data-height="400"></script>
// where the chat should appear; this script puts an iframe of that
// server's /embed page in its place.
(function () {
  "use strict";
  var s = document.currentScript;
  if (!s || !s.src) return;
  var origin = new URL(s.src, location.href).origin;
  var room = (s.getAttribute("data-room") || "").replace(/^#/, "");
  var height = parseInt(s.getAttribute("data-height"), 10);
  if (!(height >= 150 && height <= 4000)) height = 400;
  var f = document.createElement("iframe");
  f.src = origin + "/embed" + (room ? "?room=" + encodeURIComponent(room) : "");
  f.title = "Chat" + (room ? ": #" + room : "");
  f.className = "chatbridge-embed";
  f.setAttribute("loading", "lazy");
  f.setAttribute("allow", "clipboard-write");
  f.style.cssText = "display:block;width:100%;height:" + height + "px;border:1px solid #d5d8de;border-radius:8px;";
  s.parentNode.insertBefore(f, s.nextSibling);
})();
