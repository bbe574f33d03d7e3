package bridge

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"chatbridge/tcpserver"
)

// With MetricsApart, /metrics is not on the public routes, and a
// MetricsServer serves it, alone, with the same headers and 405s.
func TestMetricsApart(t *testing.T) {
	st := start(t, tcpserver.HubConfig{}, Config{MetricsApart: true})
	st.plain(t, "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := st.bridge.MetricsServer()
	served := make(chan error, 1)
	go func() { served <- m.Serve(context.Background(), l) }()
	metricsURL := "http://" + l.Addr().String()

	do := func(method, url string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if strings.HasPrefix(url, metricsURL) && resp.Header.Get("Content-Security-Policy") != cspNone || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: headers %v", method, url, resp.Header)
		}
		return resp, string(b)
	}
	if resp, _ := do("GET", st.httpURL+"/metrics"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public /metrics: %d, want 404", resp.StatusCode)
	}
	if resp, body := do("GET", metricsURL+"/metrics"); resp.StatusCode != 200 || !strings.Contains(body, `chatbridge_clients{transport="ws"} 1`) {
		t.Fatalf("metrics listener: %d %.200q", resp.StatusCode, body)
	}
	for _, path := range []string{"/", "/healthz", "/ws"} {
		if resp, _ := do("GET", metricsURL+path); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("metrics listener %s: %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, _ := do("POST", metricsURL+"/metrics"); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /metrics: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	http.DefaultClient.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}
