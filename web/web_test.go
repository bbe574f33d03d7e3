package web

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) (*http.Response, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	resp := rec.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// The home page names the versioned embed.js and its integrity hash, and
// the hash is that of the bytes served at that path: a page that loads it
// with Subresource Integrity gets the chat.
func TestEmbedScriptIntegrityMatchesServedBytes(t *testing.T) {
	h := Handler()
	_, page := get(t, h, "/")
	m := regexp.MustCompile(`<meta name="chatbridge-embed-script" content="([^"]*)" data-integrity="([^"]*)">`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no embed script meta in the page:\n%s", page)
	}
	path, integrity := string(m[1]), string(m[2])
	if p, i := EmbedScript(); p != path || i != integrity {
		t.Fatalf("page says %s %s, EmbedScript %s %s", path, integrity, p, i)
	}
	if bytes.Contains(page, []byte("{{")) || !regexp.MustCompile(`^/embed\.[0-9a-f]{16}\.js$`).MatchString(path) {
		t.Fatalf("path %q; placeholders left: %v", path, bytes.Contains(page, []byte("{{")))
	}
	resp, body := get(t, h, path)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("%s = %d %v", path, resp.StatusCode, resp.Header)
	}
	sum := sha512.Sum384(body)
	if got := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); got != integrity {
		t.Fatalf("served bytes hash to %s, the page says %s", got, integrity)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("%s Cache-Control %q", path, cc)
	}
	_, plain := get(t, h, "/embed.js")
	if !bytes.Equal(plain, body) {
		t.Error("/embed.js and the versioned path serve different bytes")
	}
	// In CORS mode (crossorigin="anonymous", which integrity needs) the
	// browser takes the script only if anyone may read it.
	for _, p := range []string{path, "/embed.js"} {
		if resp, _ := get(t, h, p); resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin %q", p, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	if resp, _ := get(t, h, "/app.js"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("/app.js is shared with other origins")
	}
	if resp, _ := get(t, h, "/embed.0123456789abcdef.js"); resp.StatusCode != 404 {
		t.Errorf("another version = %d", resp.StatusCode)
	}
}

// A pinned tab has an icon: /favicon.ico (no more 404 on every load), the
// icons the page and the manifest name, and the manifest itself.
func TestIconsAndManifest(t *testing.T) {
	h := Handler()
	resp, ico := get(t, h, "/favicon.ico")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/x-icon" {
		t.Fatalf("/favicon.ico = %d %v", resp.StatusCode, resp.Header)
	}
	// An ICO header (reserved 0, type 1, count), then each image, here
	// PNGs, at the offset its directory entry gives.
	if len(ico) < 6 || binary.LittleEndian.Uint16(ico[0:]) != 0 || binary.LittleEndian.Uint16(ico[2:]) != 1 {
		t.Fatalf("/favicon.ico is not an icon: % x", ico[:min(len(ico), 16)])
	}
	for i := range int(binary.LittleEndian.Uint16(ico[4:])) {
		e := ico[6+16*i:]
		size, off := binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])
		img, err := png.Decode(bytes.NewReader(ico[off : off+size]))
		if err != nil || img.Bounds().Dx() != int(e[0]) {
			t.Fatalf("icon %d: %v, %v", i, err, img.Bounds())
		}
	}

	_, page := get(t, h, "/")
	for _, want := range []string{`href="/favicon.ico"`, `href="/icon.svg"`, `href="/manifest.webmanifest"`} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %s", want)
		}
	}
	resp, b := get(t, h, "/manifest.webmanifest")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/manifest+json" {
		t.Fatalf("manifest = %d %v", resp.StatusCode, resp.Header)
	}
	var m struct {
		Name     string
		StartURL string `json:"start_url"`
		Icons    []struct{ Src, Sizes, Type string }
	}
	if err := json.Unmarshal(b, &m); err != nil || m.StartURL != "/" || len(m.Icons) == 0 {
		t.Fatalf("manifest %+v: %v", m, err)
	}
	for _, ic := range m.Icons {
		resp, b := get(t, h, ic.Src)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ic.Type {
			t.Errorf("%s = %d %s, want %s", ic.Src, resp.StatusCode, resp.Header.Get("Content-Type"), ic.Type)
			continue
		}
		if ic.Type == "image/png" {
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil || ic.Sizes != fmt.Sprintf("%dx%d", img.Bounds().Dx(), img.Bounds().Dy()) {
				t.Errorf("%s: %v, %v, manifest says %s", ic.Src, err, img.Bounds(), ic.Sizes)
			}
		}
	}
}
