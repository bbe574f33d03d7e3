// Package web holds the chat page that chatbridge serves: plain HTML, CSS
// and JavaScript, embedded in the binary, with no build step and nothing
// loaded from elsewhere, so the page works offline.
//
// The page is served at / and, as a compact view for iframes, at /embed;
// /embed.js puts that iframe on another site's page, and so does
// /embed.HASH.js, the same bytes at a name that changes with them, for
// sites that load it with Subresource Integrity. The page speaks the
// bridge's JSON protocol over /ws.
//
// Contract used by outside checks, kept stable: the message box is the
// textarea named "message", the transcript is the element with role="log",
// and Enter sends.
package web

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"net/http"
	"time"
)

//go:embed index.html app.css app.js embed.js favicon.ico icon.svg icon-192.png icon-512.png manifest.webmanifest
var files embed.FS

// FS returns the page's files.
func FS() fs.FS { return files }

// A file is one of the page's files, ready to serve.
type file struct {
	name        string
	contentType string
	cache       string // Cache-Control
	body        []byte
	etag        string
}

// Caching: the HTML is checked with the server on every load (cheap, with
// its ETag), so a new version shows at once; the scripts, the style sheet
// and the icons are kept an hour, then checked; the versioned embed.js
// never changes.
const (
	cacheHTML      = "no-cache"
	cacheStatic    = "public, max-age=3600"
	cacheImmutable = "public, max-age=31536000, immutable"
)

// The page learns where the versioned embed.js is, and its integrity
// hash, from these two placeholders in index.html, filled in when the
// handler is made: the snippet the page offers for copying then always
// names the bytes this binary serves.
const (
	embedPathMark      = "{{embed-path}}"
	embedIntegrityMark = "{{embed-integrity}}"
)

// EmbedScript returns the path of the versioned embed.js, such as
// /embed.3f2a9c0d1e4b5a6c.js, and its Subresource Integrity hash
// (sha384-...), both computed from the embedded file.
func EmbedScript() (path, integrity string) {
	b, err := files.ReadFile("embed.js")
	if err != nil {
		panic("web: " + err.Error())
	}
	sum := sha256.Sum256(b)
	sri := sha512.Sum384(b)
	return "/embed." + hex.EncodeToString(sum[:8]) + ".js", "sha384-" + base64.StdEncoding.EncodeToString(sri[:])
}

// Handler serves the page: GET / and GET /embed (the same page; its script
// turns compact on /embed), /app.js, /app.css, /embed.js and its
// versioned twin (see EmbedScript), the icons and the web app manifest.
// Each answer has an ETag, and a conditional GET gets 304. Other paths
// get 404.
func Handler() http.Handler {
	embedPath, embedIntegrity := EmbedScript()
	load := func(name, contentType, cache string, fill ...string) *file {
		b, err := files.ReadFile(name)
		if err != nil {
			// The files are embedded at build time; a missing one is a
			// build that cannot work at all.
			panic("web: " + err.Error())
		}
		for i := 0; i+1 < len(fill); i += 2 {
			b = bytes.ReplaceAll(b, []byte(fill[i]), []byte(fill[i+1]))
		}
		sum := sha256.Sum256(b)
		return &file{name: name, contentType: contentType, cache: cache, body: b,
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	page := load("index.html", "text/html; charset=utf-8", cacheHTML, embedPathMark, embedPath, embedIntegrityMark, embedIntegrity)
	const js = "text/javascript; charset=utf-8"
	routes := map[string]*file{
		"/":                     page,
		"/embed":                page,
		"/app.js":               load("app.js", js, cacheStatic),
		"/app.css":              load("app.css", "text/css; charset=utf-8", cacheStatic),
		"/embed.js":             load("embed.js", js, cacheStatic),
		embedPath:               load("embed.js", js, cacheImmutable),
		"/index.html":           page,
		"/favicon.ico":          load("favicon.ico", "image/x-icon", cacheStatic),
		"/icon.svg":             load("icon.svg", "image/svg+xml", cacheStatic),
		"/icon-192.png":         load("icon-192.png", "image/png", cacheStatic),
		"/icon-512.png":         load("icon-512.png", "image/png", cacheStatic),
		"/manifest.webmanifest": load("manifest.webmanifest", "application/manifest+json", cacheStatic),
	}
	// Other sites load embed.js; with an integrity attribute they must
	// ask for it in CORS mode, and get it only if it says anyone may.
	shared := map[*file]bool{routes["/embed.js"]: true, routes[embedPath]: true}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := routes[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", f.cache)
		h.Set("ETag", f.etag)
		if shared[f] {
			h.Set("Access-Control-Allow-Origin", "*")
		}
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
	})
}
