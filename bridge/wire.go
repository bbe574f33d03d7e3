package bridge

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"chatbridge/tcpserver"
)

// Buffer sizes for the bufio.Reader and bufio.Writer that coder/websocket
// keeps for the life of a connection. net/http would hand over 4 KiB of
// each through Hijack; these are held by every idle connection, so they
// are kept just big enough for a frame header and a typical chat line (the
// reader) and for a control frame (the writer). Larger payloads bypass
// bufio altogether, and data frames are gathered by wireConn's cork.
const (
	connReadBuf  = 256
	connWriteBuf = 256
)

// corkChunk is the most the cork gathers before it writes. A member far
// behind is written in chunks of this size, as the TCP server's writer
// writes (tcpserver's outBufSize), and a piece of a frame this big is
// written from the event itself, not copied: the backlog of a thousand
// slow members is not a thousand copies of it.
const corkChunk = 32 << 10

// corkKeep is the largest cork buffer returned to the pool; one that grew
// past it (the library's control frames can take it a little over
// corkChunk) is left to the garbage collector.
const corkKeep = corkChunk + 4<<10

// aheadSize is the read-ahead buffer a connection borrows when a read
// fills the library's small bufio.Reader: a client sending fast gets its
// frames read from the network in big gulps, not 256 bytes at a time.
const aheadSize = 16 << 10

// A wireConn is the hijacked connection as coder/websocket sees it. It adds
// two things to the net.Conn:
//
//   - A cork. The library flushes every frame with its own write system
//     call; while the member's writer is corked, frames (and any control
//     frame another goroutine writes meanwhile) are gathered in a pooled
//     buffer and go out in one write when it uncorks, or every corkChunk
//     bytes. The buffer is only borrowed while corked, so an idle
//     connection holds none.
//   - Deadlines. Every write to the network has one (the server's
//     --write-timeout, kept as tcpserver.WriteDeadline does), and the
//     member can hurry writes in progress and to come (see setEndBy) when
//     it cuts a slow client off or ends.
type wireConn struct {
	net.Conn
	pool *sync.Pool // *[]byte

	// early holds bytes the client sent before the upgrade finished and
	// net/http had already read; Read returns them first. Only the
	// goroutine that holds the library's read lock reads.
	early []byte

	// ahead holds bytes read beyond what the library asked for (see
	// aheadSize), borrowed from aheadPool only while it holds some;
	// aheadAt is how much of it Read has handed out, and aheadErr the
	// error the network read that filled it ended with. raw reads without
	// waiting; nil where the connection has no descriptor (TLS).
	ahead     *[]byte
	aheadAt   int
	aheadErr  error
	aheadPool *sync.Pool
	raw       syscall.RawConn

	// poll is the descriptor a parked reader waits on: raw's, or for TLS
	// that of the TCP connection under it, whose bytes are records that
	// only crypto/tls can read (see readNowTLS); nil if there is none.
	poll    syscall.RawConn
	tlsConn *tls.Conn // the connection, if it is TLS

	// idleOK lets the next Read that finds nothing, between frames, say
	// errIdle instead of waiting (see wsConn.read). frames follows where
	// the frames the library reads begin and end, and refuses a message
	// over the read limit at its header; it belongs to whoever holds the
	// library's read lock.
	idleOK atomic.Bool
	frames frameCounter
	taken  uint64 // messages the reader has read, of frames.ended

	// heard counts the reads that brought something from the client: the
	// keepalive takes any of them after a ping as its answer.
	heard atomic.Uint64

	// rmu guards what the reading side keeps (early, ahead and frames)
	// between Read, called under the library's read lock, and
	// messageReady, which the member's reader calls between messages,
	// outside it: a close handshake (the library's, in the writer's
	// goroutine) may be reading frames meanwhile. A Read holds it
	// throughout, a network read included; only that handshake ever
	// makes the reader wait for it.
	rmu sync.Mutex

	// beforeClose, if set, runs before the connection is closed, on every
	// path: it wakes a parked reader while the descriptor is still ours.
	beforeClose func()

	dl       sync.Mutex
	deadline tcpserver.WriteDeadline // the writes' deadline while endBy is unset
	endBy    time.Time               // if set, no write may last past it
	readBy   time.Time               // the read deadline set, which readNowTLS puts back after its own

	mu        sync.Mutex // held while writing to the network
	corked    bool
	buf       *[]byte // borrowed from pool while corked
	closeSent bool    // the library wrote a close frame: no data frame may follow
	pending   *[]byte // the handshake's answer, borrowed from pool, to go out with the first write
}

// errIdle is what Read says, when the reader allows it, if nothing has
// come in and the library is between frames. The library's Reader hands
// it back and the connection stays as it was; the reader then parks.
var errIdle = errors.New("nothing to read yet")

// errTooBig is what Read says once a frame header has announced more than
// the message may hold (see frameCounter): the library hands it back from
// the payload read, and the reader refuses the message itself.
var errTooBig = errors.New("message over the read limit")

func (w *wireConn) Read(p []byte) (int, error) {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	if w.frames.over {
		w.dropAhead()
		return 0, errTooBig
	}
	n, err := w.read(p)
	if n > 0 {
		w.heard.Add(1)
	}
	if k := w.frames.feed(p[:n]); k < n {
		// A header took its message over the limit. The library gets
		// the header and none of the payload, so its own count of the
		// message never passes the limit, and the message never ends;
		// its read of the payload is the next Read, which says
		// errTooBig. The rest is the refused message: thrown away.
		n, err = k, nil
	}
	return n, err
}

// dropAhead gives back the read-ahead buffer, whose bytes are no longer
// wanted.
func (w *wireConn) dropAhead() {
	if w.ahead != nil {
		w.aheadPool.Put(w.ahead)
		w.ahead = nil
	}
	w.early = nil
}

func (w *wireConn) read(p []byte) (int, error) {
	if len(w.early) > 0 {
		n := copy(p, w.early)
		w.early = w.early[n:]
		if len(w.early) == 0 {
			w.early = nil
		}
		return n, nil
	}
	if w.ahead != nil {
		n := copy(p, (*w.ahead)[w.aheadAt:])
		w.aheadAt += n
		if w.aheadAt == len(*w.ahead) {
			w.aheadPool.Put(w.ahead)
			w.ahead = nil
		}
		return n, nil
	}
	if err := w.aheadErr; err != nil {
		w.aheadErr = nil
		return 0, err
	}
	if w.tlsConn != nil && w.poll != nil && w.idleOK.Load() && w.frames.atBoundary() {
		n, err := w.readNowTLS(p)
		if n == 0 && err == nil {
			w.idleOK.Store(false)
			return 0, errIdle
		}
		return n, err
	}
	if w.raw != nil && w.idleOK.Load() && w.frames.atBoundary() {
		n, err := tcpserver.ReadNow(w.raw, p)
		if n == 0 && err == nil {
			w.idleOK.Store(false)
			return 0, errIdle
		}
		if n == len(p) && err == nil {
			w.readAhead()
		}
		return n, err
	}
	// Wait for data in a plain read of what the library asked for, so an
	// idle connection holds no buffer; if that read comes back full, there
	// is likely more, and it is taken at once, without waiting.
	n, err := w.Conn.Read(p)
	if n == len(p) && err == nil && w.raw != nil {
		w.readAhead()
	}
	return n, err
}

// longAgo is a deadline that has passed.
var longAgo = time.Unix(1, 0)

// readNowTLS reads what crypto/tls can give now: (0, nil) is nothing
// yet, and the reader may then wait on the TCP connection's descriptor.
// If the network has bytes, crypto/tls reads them (and may wait for the
// rest of a record, as the library waits for the rest of a frame).
// Otherwise a read deadline that has passed makes it say what it holds
// already (a whole record read with the one before) without touching the
// network; it takes such a timeout as temporary, and keeps any part of a
// record it holds for the next read. (Go's read with a deadline passed
// does not even look at the socket: hence the look first.)
func (w *wireConn) readNowTLS(p []byte) (int, error) {
	if tcpserver.Readable(w.poll) {
		return w.Conn.Read(p)
	}
	w.dl.Lock()
	w.Conn.SetReadDeadline(longAgo)
	w.dl.Unlock()
	n, err := w.Conn.Read(p)
	w.dl.Lock()
	w.Conn.SetReadDeadline(w.readBy)
	w.dl.Unlock()
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil
	}
	return n, err
}

// SetReadDeadline sets the read deadline, and keeps it for readNowTLS to
// put back.
func (w *wireConn) SetReadDeadline(t time.Time) error {
	w.dl.Lock()
	defer w.dl.Unlock()
	w.readBy = t
	return w.Conn.SetReadDeadline(t)
}

// readAhead reads what the network has now into a borrowed buffer, and
// gives the buffer back if there was nothing.
func (w *wireConn) readAhead() {
	bp := w.aheadPool.Get().(*[]byte)
	b := (*bp)[:cap(*bp)]
	n, err := tcpserver.ReadNow(w.raw, b)
	if n > 0 {
		*bp = b[:n]
		w.ahead, w.aheadAt = bp, 0
		return
	}
	w.aheadErr = err
	w.aheadPool.Put(bp)
}

// messageReady reports whether a whole data message the reader has not
// taken yet has been read from the network: in the library's buffer, or
// in this connection's, beyond what the library was handed. The first
// bytes of a frame are not enough; a message ends with its last frame.
// Reader only.
func (w *wireConn) messageReady() bool {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	if w.frames.ended > w.taken {
		return true
	}
	if len(w.early) > 0 {
		return w.frames.endsMessage(w.early)
	}
	return w.ahead != nil && w.frames.endsMessage((*w.ahead)[w.aheadAt:])
}

// Write gathers p while corked, and writes it through otherwise, after
// the handshake's answer if that is still pending. The library calls it
// for control frames, each in one call (its write buffer holds any
// control frame whole), and sendClose for its own. Nothing is written
// after a close frame: the library does not know of the ones sendClose
// writes, and would answer the client's close, or ping, after them.
func (w *wireConn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closeSent {
		return len(p), nil
	}
	n := len(p)
	if n > 0 && p[0] == finClose {
		w.closeSent = true
		if n > 4 && !utf8.Valid(p[4:]) {
			// The library echoes the code and reason of a client's close
			// frame, a reason that is not UTF-8 included. RFC 6455 (8.1)
			// wants such a frame failed with 1007; and the server never
			// sends a reason that is not UTF-8.
			var b [4 + maxCloseReason]byte
			p = appendCloseFrame(b[:0], websocket.StatusInvalidFramePayloadData, "close reason is not UTF-8")
		}
	}
	if w.corked {
		if err := w.copyLocked(p); err != nil {
			return 0, err
		}
		return n, nil
	}
	if err := w.setDeadline(); err != nil {
		return 0, err
	}
	if w.pending != nil {
		bp := w.pending
		w.pending = nil
		defer w.release(bp)
		p = append(*bp, p...)
	}
	if _, err := w.Conn.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

// sendClose writes a close frame with code and reason (cut to fit), as
// the library would, for the reader, which must not call the library's
// Close: that would read the rest of the message it is refusing, byte by
// byte. Like the library's, it goes out with what the writer has
// gathered, if anything, and nothing goes out after it.
func (w *wireConn) sendClose(code websocket.StatusCode, reason string) error {
	var b [4 + maxCloseReason]byte
	_, err := w.Write(appendCloseFrame(b[:0], code, reason))
	return err
}

// appendCloseFrame appends an unmasked close frame with code and reason,
// cut to fit.
func appendCloseFrame(b []byte, code websocket.StatusCode, reason string) []byte {
	reason = closeReason(reason)
	b = append(b, finClose, byte(2+len(reason)), byte(code>>8), byte(code))
	return append(b, reason...)
}

// First bytes of the frames the server writes itself: FIN set, no RSV
// bits, and the opcode (RFC 6455, section 5.2).
const (
	finText  = 0x81
	finClose = 0x88
	finPing  = 0x89
)

// pingFrame is the keepalive's ping: no payload, so its pong has none
// either; any read after it will do as the answer (see keepalive).
var pingFrame = [...]byte{finPing, 0}

// What tryPing did.
type pingResult int

const (
	pingSent    pingResult = iota // gathered, or written whole
	pingBusy                      // not sent: a write is in progress, the send buffer is full, or the first write is still to come
	pingBlocked                   // not sent: the connection cannot be written without waiting (TLS); see writePing
)

// tryPing sends a ping frame if that takes no waiting. While the writer
// is corked the frame is gathered with its frames; otherwise it is
// written at once, without waiting. A connection being written to has
// its write deadline watching the client, so it is not pinged (pingBusy);
// nor is one whose socket is full. One whose raw descriptor is not
// reachable (TLS) says pingBlocked: its ping needs a write that may wait.
func (w *wireConn) tryPing() pingResult {
	if !w.mu.TryLock() {
		return pingBusy // a writer is in a write, or the library in a control frame's
	}
	defer w.mu.Unlock()
	switch {
	case w.closeSent, w.pending != nil:
		return pingBusy
	case w.corked:
		*w.buf = append(*w.buf, pingFrame[:]...)
		return pingSent
	case w.raw == nil:
		return pingBlocked
	}
	// The last write's deadline has most likely passed on an idle
	// connection, and the raw write would refuse to start.
	if err := w.setDeadline(); err != nil {
		return pingBusy
	}
	n, err := tcpserver.WriteNow(w.raw, pingFrame[:])
	switch {
	case err != nil:
		return pingSent // a dead connection: nothing will answer
	case n == 0:
		return pingBusy
	case n < len(pingFrame):
		// The socket took only part of it: the rest goes out first with
		// the next write, as the handshake's answer does.
		bp := w.pool.Get().(*[]byte)
		*bp = append((*bp)[:0], pingFrame[n:]...)
		w.pending = bp
	}
	return pingSent
}

// writePing writes a ping frame, waiting as long as the write deadline
// allows; for a connection tryPing cannot write without waiting.
func (w *wireConn) writePing() {
	w.Write(pingFrame[:])
}

// gatherFrame adds to what is gathered one text frame holding p. The
// member's writer writes data frames this way, not through the library: a
// frame is a few header bytes and a copy, where the library takes two
// locks and a flush for each. The library still writes every control
// frame, whole, through Write; the lock keeps them from landing inside a
// data frame, and no data frame follows a close frame. The writer must
// have corked.
//
// What is gathered goes out whenever it would pass corkChunk, so the
// buffer never grows past it; a payload of corkChunk or more is written
// as it is, after what was gathered, without a copy.
func (w *wireConn) gatherFrame(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.frameHeaderLocked(len(p)); err != nil {
		return err
	}
	return w.gatherLocked(p)
}

// gatherArray adds to what is gathered one text frame of n payload bytes
// holding the JSON array of the events' encodings, as gatherFrame does.
func (w *wireConn) gatherArray(batch []*tcpserver.Event, n int) error {
	size := len(jsonBatchOpen) + len(jsonBatchClose) + len(batch) - 1
	for _, ev := range batch {
		size += len(ev.JSON())
	}
	if size != n {
		return fmt.Errorf("bridge: frame payload of %d bytes, header says %d", size, n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.frameHeaderLocked(n); err != nil {
		return err
	}
	sep := jsonBatchOpen
	for _, ev := range batch {
		if err := w.copyLocked([]byte(sep)); err != nil {
			return err
		}
		if err := w.gatherLocked(ev.JSON()); err != nil {
			return err
		}
		sep = ","
	}
	return w.copyLocked([]byte(jsonBatchClose))
}

// frameHeaderLocked gathers the header of a text frame of n payload
// bytes, if a data frame may be written now.
func (w *wireConn) frameHeaderLocked(n int) error {
	if w.closeSent {
		return errCloseSent
	}
	if !w.corked {
		return errNotCorked
	}
	var hdr [maxFrameHeader]byte
	return w.copyLocked(appendFrameHeader(hdr[:0], finText, n))
}

// copyLocked adds a few bytes to what is gathered, writing that out first
// if they would take it past corkChunk.
func (w *wireConn) copyLocked(p []byte) error {
	if len(*w.buf) > 0 && len(*w.buf)+len(p) > corkChunk {
		if err := w.writeGatheredLocked(); err != nil {
			return err
		}
	}
	*w.buf = append(*w.buf, p...)
	return nil
}

// gatherLocked adds p to what is gathered, writing that out first if p
// would take it past corkChunk; p itself, if that big, is written as it
// is.
func (w *wireConn) gatherLocked(p []byte) error {
	if len(*w.buf) > 0 && len(*w.buf)+len(p) > corkChunk {
		if err := w.writeGatheredLocked(); err != nil {
			return err
		}
	}
	if len(p) >= corkChunk {
		return w.writeLocked(p)
	}
	*w.buf = append(*w.buf, p...)
	return nil
}

// writeGatheredLocked writes what is gathered and goes on gathering.
func (w *wireConn) writeGatheredLocked() error {
	b := *w.buf
	*w.buf = b[:0]
	return w.writeLocked(b)
}

// writeLocked writes p to the network, with a deadline.
func (w *wireConn) writeLocked(p []byte) error {
	if err := w.setDeadline(); err != nil {
		return err
	}
	_, err := w.Conn.Write(p)
	return err
}

var errNotCorked = errors.New("bridge: data frame written while not corked")

// errCloseSent is what gatherFrame says once the library has written a
// close frame: no data may follow it.
var errCloseSent = errors.New("bridge: close frame already sent")

// maxFrameHeader is the longest header of an unmasked frame.
const maxFrameHeader = 10

// appendFrameHeader appends the header of an unmasked frame of n payload
// bytes whose first byte is first.
func appendFrameHeader(b []byte, first byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, first, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, first, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, first, 127), uint64(n))
	}
}

// cork starts gathering writes.
func (w *wireConn) cork() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.corked {
		return
	}
	w.corked = true
	if w.pending != nil {
		w.buf, w.pending = w.pending, nil
		return
	}
	w.buf = w.pool.Get().(*[]byte)
}

// uncork writes what was gathered, in one write, and stops gathering.
func (w *wireConn) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *wireConn) flushLocked() error {
	if !w.corked {
		return nil
	}
	w.corked = false
	bp := w.buf
	w.buf = nil
	defer w.release(bp)
	if len(*bp) == 0 {
		return nil
	}
	return w.writeLocked(*bp)
}

// discard drops what was gathered and stops gathering.
func (w *wireConn) discard() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.corked {
		w.corked = false
		w.release(w.buf)
		w.buf = nil
	}
}

func (w *wireConn) release(bp *[]byte) {
	if cap(*bp) > corkKeep {
		return
	}
	*bp = (*bp)[:0]
	w.pool.Put(bp)
}

// Close sends what was gathered, if anything, then closes the connection.
// The library calls it right after it answers a client's close frame,
// which may still be in the cork; this way the answer is not lost.
func (w *wireConn) Close() error {
	if w.beforeClose != nil {
		w.beforeClose()
	}
	w.setEndBy(time.Now().Add(closeFlush))
	w.mu.Lock()
	w.flushLocked()
	w.mu.Unlock()
	return w.Conn.Close()
}

// drain reads and throws away what the client sends, for at most d and
// max bytes or until it hangs up. It reads the network connection itself,
// not the library's buffers, so it may run while a Close elsewhere waits
// for the client's close frame; the bytes either reads are lost to the
// other, and both are only waiting for the end.
func (w *wireConn) drain(d time.Duration, max int64) {
	w.Conn.SetReadDeadline(time.Now().Add(d))
	io.CopyN(io.Discard, w.Conn, max)
}

// closeNow closes the connection at once, dropping anything gathered.
func (w *wireConn) closeNow() {
	if w.beforeClose != nil {
		w.beforeClose()
	}
	w.Conn.Close()
}

// setDeadline makes sure the next write to the network has a deadline.
func (w *wireConn) setDeadline() error {
	w.dl.Lock()
	defer w.dl.Unlock()
	if w.endBy.IsZero() {
		return w.deadline.Refresh(w.Conn)
	}
	d := time.Now().Add(w.deadline.Timeout)
	if w.endBy.Before(d) {
		d = w.endBy
	}
	return w.Conn.SetWriteDeadline(d)
}

// setEndBy makes every write, the one in progress included, give up at t.
func (w *wireConn) setEndBy(t time.Time) {
	w.dl.Lock()
	defer w.dl.Unlock()
	w.endBy = t
	w.deadline.Forget() // whatever it set is overridden
	w.Conn.SetWriteDeadline(t)
}

// hijackWriter hands coder/websocket a wireConn and small buffers instead
// of net/http's 4 KiB ones (see connReadBuf). websocket.Accept finds its
// Hijack method before the ResponseWriter's own.
type hijackWriter struct {
	http.ResponseWriter
	timeout    time.Duration
	sendBuffer int        // see Config.SendBuffer
	pool       *sync.Pool // cork buffers
	aheadPool  *sync.Pool // read-ahead buffers

	wire *wireConn // set by Hijack

	switching bool // the library said 101; Hijack writes it
}

// WriteHeader holds back the 101 that ends a WebSocket handshake: Hijack
// puts it in front of the first thing written on the connection, so that
// the answer and the welcome go out in one write, not two.
func (h *hijackWriter) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		h.switching = true
		return
	}
	h.ResponseWriter.WriteHeader(code)
}

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack: %w", err)
	}
	tcpserver.CapSendBuffer(nc, h.sendBuffer)
	w := &wireConn{Conn: nc, pool: h.pool, aheadPool: h.aheadPool}
	w.deadline.Timeout = h.timeout
	if h.aheadPool != nil {
		w.raw = tcpserver.RawConnOf(nc)
		w.poll = w.raw
		if tc, ok := nc.(*tls.Conn); ok {
			w.tlsConn = tc
			w.poll = tcpserver.RawConnOf(tc.NetConn())
		}
	}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		w.early = bytes.Clone(b)
	}
	if h.switching {
		var head bytes.Buffer
		head.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
		h.ResponseWriter.Header().Write(&head)
		head.WriteString("\r\n")
		bp := h.pool.Get().(*[]byte)
		*bp = append((*bp)[:0], head.Bytes()...)
		w.pending = bp
	}
	h.wire = w
	return w, bufio.NewReadWriter(bufio.NewReaderSize(w, connReadBuf), bufio.NewWriterSize(w, connWriteBuf)), nil
}

// Unwrap lets http.ResponseController reach the real ResponseWriter.
func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// frameCounter follows the boundaries of the WebSocket frames in a byte
// stream fed to it piece by piece (RFC 6455, section 5.2: two header
// bytes, 0, 2 or 8 bytes of extended length, 4 of mask if masked, then the
// payload), and the data messages they make up: a text or binary frame
// and its continuations, up to the one with FIN set, with control frames
// allowed between them. It checks nothing the library checks; it only
// counts, and stops at a header that would take a message over limit.
type frameCounter struct {
	limit uint64 // the most payload bytes a data message may have; 0: any

	hdr     [14]byte
	hn      int    // header bytes seen of the frame being read
	left    uint64 // payload bytes still to come
	endsMsg bool   // the frame being read is the last of a data message

	msgLen uint64 // payload bytes announced so far for the message in progress
	ended  uint64 // data messages whose last byte has been fed
	over   bool   // a header took its message over limit; nothing more is fed
}

// atBoundary reports whether everything fed so far is whole frames.
func (f *frameCounter) atBoundary() bool { return f.hn == 0 && f.left == 0 }

// feed follows p and returns how much of it it took: all of it, unless a
// header in p takes its message over the limit, when it stops right after
// that header (and takes nothing from then on). The bytes of such a
// frame's payload are never the library's: see wireConn.Read.
func (f *frameCounter) feed(p []byte) int {
	n, _ := f.scan(p, false)
	return n
}

// endsMessage reports whether p, fed after what was fed so far, ends a
// data message. It changes nothing: it follows a copy of the counter,
// and only until the first message ends.
func (f *frameCounter) endsMessage(p []byte) bool {
	g := *f
	_, ended := g.scan(p, true)
	return ended
}

// scan feeds p, stopping early if a header takes its message over the
// limit or, with untilEnd, once a data message ends. It returns how much
// it took and whether a message ended.
func (f *frameCounter) scan(p []byte, untilEnd bool) (int, bool) {
	if f.over {
		return 0, false
	}
	ended := false
	i := 0
	for i < len(p) {
		if f.left > 0 {
			k := min(uint64(len(p)-i), f.left)
			f.left -= k
			i += int(k)
			if f.left == 0 && f.endsMsg {
				f.endMessage()
				ended = true
				if untilEnd {
					return i, true
				}
			}
			continue
		}
		f.hdr[f.hn] = p[i]
		f.hn++
		i++
		if f.hn < 2 {
			continue
		}
		size, length := 2, uint64(f.hdr[1]&0x7f)
		switch length {
		case 126:
			size += 2
		case 127:
			size += 8
		}
		if f.hdr[1]&0x80 != 0 {
			size += 4
		}
		if f.hn < size {
			continue
		}
		switch length {
		case 126:
			length = uint64(binary.BigEndian.Uint16(f.hdr[2:4]))
		case 127:
			length = binary.BigEndian.Uint64(f.hdr[2:10])
		}
		f.left, f.hn, f.endsMsg = length, 0, false
		switch f.hdr[0] & 0x0f {
		case opcodeText, opcodeBinary:
			f.msgLen = 0 // a new message (the library refuses one that interrupts another)
		case opcodeContinuation:
		default:
			continue // a control frame: not part of any message
		}
		f.msgLen += min(length, math.MaxUint64-f.msgLen)
		if f.limit > 0 && f.msgLen > f.limit {
			f.over = true
			return i, ended
		}
		f.endsMsg = f.hdr[0]&0x80 != 0
		if f.endsMsg && length == 0 {
			f.endMessage()
			ended = true
			if untilEnd {
				return i, true
			}
		}
	}
	return i, ended
}

func (f *frameCounter) endMessage() {
	f.ended++
	f.msgLen, f.endsMsg = 0, false
}

// The opcodes of data frames (RFC 6455, section 5.2).
const (
	opcodeContinuation = 0x0
	opcodeText         = 0x1
	opcodeBinary       = 0x2
)
