// Package web holds the chat page that chatbridge serves: plain HTML, CSS
// and JavaScript, embedded in the binary, with no build step and nothing
// loaded from elsewhere, so the page works offline.
//
// The page is served at / and, as a compact view for iframes, at /embed;
// /embed.js puts that iframe on another site's page. The page speaks the
// bridge's JSON protocol over /ws.
//
// Contract used by outside checks, kept stable: the message box is the
// input named "message", the transcript is the element with role="log",
// and Enter sends.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"time"
)

//go:embed index.html app.css app.js embed.js
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
// its ETag), so a new version shows at once; the scripts and the style
// sheet are kept an hour, then checked.
const (
	cacheHTML   = "no-cache"
	cacheStatic = "public, max-age=3600"
)

// Handler serves the page: GET / and GET /embed (the same page; its script
// turns compact on /embed), /app.js, /app.css and /embed.js. Each answer
// has an ETag, and a conditional GET gets 304. Other paths get 404.
func Handler() http.Handler {
	load := func(name, contentType, cache string) *file {
		b, err := files.ReadFile(name)
		if err != nil {
			// The files are embedded at build time; a missing one is a
			// build that cannot work at all.
			panic("web: " + err.Error())
		}
		sum := sha256.Sum256(b)
		return &file{name: name, contentType: contentType, cache: cache, body: b,
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	page := load("index.html", "text/html; charset=utf-8", cacheHTML)
	routes := map[string]*file{
		"/":           page,
		"/embed":      page,
		"/app.js":     load("app.js", "text/javascript; charset=utf-8", cacheStatic),
		"/app.css":    load("app.css", "text/css; charset=utf-8", cacheStatic),
		"/embed.js":   load("embed.js", "text/javascript; charset=utf-8", cacheStatic),
		"/index.html": page,
	}
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
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
	})
}
