package bridge

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// rawWS is a WebSocket client that writes and reads frames byte by byte,
// for what a client library would not send: headers announcing absurd
// lengths, fragments cut anywhere, invalid UTF-8.
type rawWS struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// Opcodes and the FIN bit of the frames a test writes (RFC 6455, 5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
	finBit   = 0x80
)

// dialRaw upgrades a connection to /ws?query by hand, with the extra
// request header lines in extra (each "Name: value"), and fails the test
// unless the answer is 101. tlsConf, if set, dials TLS.
func (st *stack) dialRaw(t *testing.T, query string, tlsConf *tls.Config, extra ...string) *rawWS {
	t.Helper()
	conn, resp := st.handshake(t, query, tlsConf, extra...)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	return &rawWS{t: t, conn: conn, r: bufio.NewReader(io.MultiReader(resp.Body, conn))}
}

// handshake sends a WebSocket upgrade request by hand and reads the
// answer's head.
func (st *stack) handshake(t *testing.T, query string, tlsConf *tls.Config, extra ...string) (net.Conn, *http.Response) {
	t.Helper()
	addr := strings.TrimPrefix(strings.TrimPrefix(st.httpURL, "https://"), "http://")
	var conn net.Conn
	var err error
	if tlsConf != nil {
		conn, err = tls.Dial("tcp", addr, tlsConf)
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /ws?" + query + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("handshake answer: %v", err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// What the reader took beyond the head is the first frames.
		resp.Body = io.NopCloser(io.LimitReader(br, int64(br.Buffered())))
	}
	return conn, resp
}

// clientFrame is one masked frame: first is FIN and the opcode; length,
// if not negative, is what the header announces instead of len(payload).
func clientFrame(first byte, payload []byte, length int64) []byte {
	if length < 0 {
		length = int64(len(payload))
	}
	b := []byte{first}
	switch {
	case length < 126:
		b = append(b, 0x80|byte(length))
	case length <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(length))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(length))
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// closePayload is a close frame's payload: the code, then the reason.
func closePayload(code websocket.StatusCode, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func (c *rawWS) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("raw write: %v", err)
	}
}

// frame reads one frame from the server (unmasked), within d.
func (c *rawWS) frame(d time.Duration) (first byte, payload []byte, err error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.r, payload)
	return h[0], payload, err
}

// closeFrame reads frames until the server's close frame, within d, and
// returns its code and reason. The reason must be valid UTF-8.
func (c *rawWS) closeFrame(d time.Duration) (websocket.StatusCode, string) {
	c.t.Helper()
	end := time.Now().Add(d)
	for {
		first, p, err := c.frame(time.Until(end))
		if err != nil {
			c.t.Fatalf("no close frame within %v: %v", d, err)
		}
		if first&0x0f != opClose {
			continue
		}
		if len(p) < 2 {
			c.t.Fatalf("close frame of %d bytes", len(p))
		}
		if !utf8.Valid(p[2:]) {
			c.t.Fatalf("close reason %q is not valid UTF-8", p[2:])
		}
		return websocket.StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
	}
}

// text reads frames until a text frame, within d, and returns it.
func (c *rawWS) text(d time.Duration) string {
	c.t.Helper()
	end := time.Now().Add(d)
	for {
		first, p, err := c.frame(time.Until(end))
		if err != nil {
			c.t.Fatalf("no text frame within %v: %v", d, err)
		}
		if first&0x0f == opText {
			return string(p)
		}
	}
}
