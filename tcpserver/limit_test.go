package tcpserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// limitedServer accepts on a limited loopback listener and keeps what it
// accepts open until the test closes it.
type limitedServer struct {
	t    *testing.T
	lim  *ConnLimiter
	addr string

	mu       sync.Mutex
	accepted []net.Conn
	got      chan net.Conn
}

func startLimited(t *testing.T, limits ConnLimits) *limitedServer {
	t.Helper()
	if limits.FileLimit == 0 {
		limits.FileLimit = 1 << 20 // the limits under test, not the machine's
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &limitedServer{t: t, lim: NewConnLimiter(limits), addr: inner.Addr().String(), got: make(chan net.Conn, 100)}
	l := s.lim.Listen(inner, func(reason string) []byte { return []byte("*** " + reason + "\r\n") })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted = append(s.accepted, nc)
			s.mu.Unlock()
			s.got <- nc
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.accepted {
			c.Close()
		}
	})
	return s
}

// dialFrom connects from the loopback address src (127.0.0.x).
func (s *limitedServer) dialFrom(src string) net.Conn {
	s.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}
	c, err := d.Dial("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// admitted reports whether the server took c: it accepted a connection
// for it, or it refused c with a reason (returned) and hung up.
func (s *limitedServer) admitted(c net.Conn) (bool, string) {
	s.t.Helper()
	select {
	case nc := <-s.got:
		if nc.RemoteAddr().String() != c.LocalAddr().String() {
			s.t.Fatalf("accepted %v, expected %v", nc.RemoteAddr(), c.LocalAddr())
		}
		return true, ""
	case <-time.After(3 * time.Second):
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		s.t.Fatalf("neither accepted nor refused: %q, %v", b, err)
	}
	return false, string(b)
}

// refused checks that c is refused at once, with the reason why.
func (s *limitedServer) refused(c net.Conn, why error) {
	s.t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Second))
	b, err := io.ReadAll(c)
	if want := "*** " + why.Error() + "\r\n"; string(b) != want || err != nil {
		s.t.Fatalf("refusal %q, %v; want %q at once", b, err, want)
	}
	select {
	case nc := <-s.got:
		s.t.Fatalf("refused connection %v was accepted too", nc.RemoteAddr())
	default:
	}
}

func (s *limitedServer) take() net.Conn {
	s.t.Helper()
	select {
	case nc := <-s.got:
		return nc
	case <-time.After(3 * time.Second):
		s.t.Fatal("nothing accepted")
		return nil
	}
}

func TestConnLimiterPerAddress(t *testing.T) {
	s := startLimited(t, ConnLimits{MaxPerIP: 3})
	var first []net.Conn
	for range 3 {
		c := s.dialFrom("127.0.0.1")
		first = append(first, s.take())
		_ = c
	}
	s.refused(s.dialFrom("127.0.0.1"), ErrTooManyFromIP)
	s.refused(s.dialFrom("127.0.0.1"), ErrTooManyFromIP)
	s.dialFrom("127.0.0.2") // another address has its own count
	s.take()
	if st := s.lim.Stats(); st.Open != 4 || st.RefusedPerIP != 2 {
		t.Fatalf("stats %+v, want 4 open and 2 refused per address", st)
	}
	// A connection counts until it is closed, once however often.
	first[0].Close()
	first[0].Close()
	s.dialFrom("127.0.0.1")
	s.take()
	s.refused(s.dialFrom("127.0.0.1"), ErrTooManyFromIP)
}

func TestConnLimiterTotal(t *testing.T) {
	s := startLimited(t, ConnLimits{MaxConns: 2})
	s.dialFrom("127.0.0.1")
	s.dialFrom("127.0.0.2")
	a := s.take()
	s.take()
	s.refused(s.dialFrom("127.0.0.3"), ErrServerFull)
	a.Close()
	s.dialFrom("127.0.0.3")
	s.take()
}

// The open-file limit caps the total whatever MaxConns says, less the
// reserve, so that accepting never fails for want of a descriptor.
func TestConnLimiterKeepsDescriptorsInReserve(t *testing.T) {
	for _, tc := range []struct{ maxConns, files, reserve, want int }{
		{0, 20000, 0, 20000 - 64},
		{20000, 20000, 0, 20000 - 64},
		{100, 20000, 0, 100},
		{0, 1000, 100, 900},
		{0, 10, 100, 1},
	} {
		l := NewConnLimiter(ConnLimits{MaxConns: tc.maxConns, FileLimit: tc.files, Reserve: tc.reserve})
		if got := l.Stats().Max; got != tc.want {
			t.Errorf("MaxConns %d, %d files, reserve %d: cap %d, want %d", tc.maxConns, tc.files, tc.reserve, got, tc.want)
		}
	}
}

// Trusted proxies carry many visitors: they are not counted per address,
// but they are in the total.
func TestConnLimiterExemptsTrustedProxies(t *testing.T) {
	s := startLimited(t, ConnLimits{MaxPerIP: 1, MaxConns: 4, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	for range 3 {
		s.dialFrom("127.0.0.1")
		s.take()
	}
	s.dialFrom("127.0.0.2")
	s.take()
	s.refused(s.dialFrom("127.0.0.3"), ErrServerFull)
}

// A limited connection is still a TCP connection to everything the
// servers ask of it: the poller's raw descriptor, a half close, the
// send buffer.
func TestConnLimiterKeepsTCPMethods(t *testing.T) {
	s := startLimited(t, ConnLimits{})
	s.dialFrom("127.0.0.1")
	nc := s.take()
	if RawConnOf(nc) == nil {
		t.Error("no raw connection")
	}
	if _, ok := nc.(interface{ CloseWrite() error }); !ok {
		t.Error("no CloseWrite")
	}
	if _, ok := nc.(interface{ SetWriteBuffer(int) error }); !ok {
		t.Error("no SetWriteBuffer")
	}
}

// A refused client that has already sent something (an HTTP request,
// telnet's negotiation) still reads the reason. (The server half-closes
// and reads the client's data away for a moment, so that it does not
// answer it with a reset: a reset throws the reason away on some systems
// and when a segment is lost, though not on Linux's loopback.)
func TestConnLimiterRefusalReachesClientsThatSend(t *testing.T) {
	s := startLimited(t, ConnLimits{MaxPerIP: 1})
	s.dialFrom("127.0.0.1")
	s.take()
	junk := strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 100)
	for i := range 20 {
		c := s.dialFrom("127.0.0.1")
		go c.Write([]byte(junk))
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if line != "*** "+ErrTooManyFromIP.Error()+"\r\n" {
			t.Fatalf("try %d: %q, %v", i, line, err)
		}
		c.Close()
	}
}

// When the process runs out of descriptors, the listener still takes a
// waiting connection off its queue (with the descriptor it holds in
// reserve) and tells it the server is full, rather than leaving it to time
// out. The process whose descriptors run out is a child: this test binary
// again, with a low open-file limit.
func TestConnLimiterShedsWhenOutOfFiles(t *testing.T) {
	if os.Getenv("CHATBRIDGE_SHED_CHILD") == "1" {
		shedChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestConnLimiterShedsWhenOutOfFiles$")
	cmd.Env = append(os.Environ(), "CHATBRIDGE_SHED_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	r := bufio.NewReader(out)
	ready := make(chan string, 1)
	go func() {
		line, _ := r.ReadString('\n')
		ready <- strings.TrimSpace(line)
	}()
	var addr string
	select {
	case addr = <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("child did not start")
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("child said %q", addr)
	}
	for i := range 3 {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if want := "*** " + ErrServerFull.Error() + "\r\n"; string(b) != want {
			t.Fatalf("connection %d: %q, %v; want %q", i, b, err, want)
		}
	}
}

// shedChild listens, prints its address, uses up every descriptor but
// the limiter's reserve and serves.
func shedChild() {
	lim := NewConnLimiter(ConnLimits{FileLimit: 1 << 20})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		return
	}
	l := lim.Listen(inner, func(reason string) []byte { return []byte("*** " + reason + "\r\n") })
	var fill []*os.File
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 64, Max: 64}); err != nil {
		fmt.Println("setrlimit:", err)
		return
	}
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		fill = append(fill, f)
	}
	fmt.Println(inner.Addr())
	for {
		nc, err := l.Accept()
		if err == nil {
			nc.Close() // nothing should get here: there is no descriptor for it
			continue
		}
		if !outOfFiles(err) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One listener of a limiter may close while another is still reading
// away a connection it refused: Close waits for it, and (under -race) the
// shared WaitGroup's Add and Wait are ordered.
func TestListenerClosesWhileAnotherRefuses(t *testing.T) {
	lim := NewConnLimiter(ConnLimits{MaxPerIP: 1, FileLimit: 1 << 20})
	listen := func() net.Listener {
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return lim.Listen(inner, func(reason string) []byte { return []byte("*** " + reason + "\r\n") })
	}
	a, b := listen(), listen()
	defer a.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := a.Accept() // the first; the second is refused inside Accept, which goes on waiting
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	first, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	held := <-accepted
	defer held.Close()
	go a.Accept() // ends when a is closed
	second, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close() // kept open: the refusal lingers, reading
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, _ := bufio.NewReader(second).ReadString('\n'); !strings.Contains(line, "too many connections") {
		t.Fatalf("refusal %q", line)
	}
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*lingerRefused {
		t.Fatalf("Close took %v", took)
	}
}

// An address may open ConnectRate connections a second after a burst of
// ConnectBurst, whether they stay or not; every try counts. Other
// addresses, and trusted proxies, are not slowed down by it.
func TestConnLimiterConnectRate(t *testing.T) {
	l := NewConnLimiter(ConnLimits{ConnectRate: 10, ConnectBurst: 5, MaxPerIP: 3, FileLimit: 1 << 20,
		Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.200/32")}})
	a, b, proxy := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.200")
	now := time.Unix(1000, 0)
	for i := range 5 {
		// Connecting and leaving: never more than one open at once.
		if err := l.admitAt(a, now); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		l.release(a)
	}
	if err := l.admitAt(a, now); err != ErrConnectRate {
		t.Fatalf("sixth at once: %v, want %v", err, ErrConnectRate)
	}
	if err := l.admitAt(b, now); err != nil {
		t.Fatalf("another address: %v", err)
	}
	for i := range 20 {
		if err := l.admitAt(proxy, now); err != nil {
			t.Fatalf("a trusted proxy's connection %d: %v", i, err)
		}
	}
	if err := l.admitAt(a, now.Add(99*time.Millisecond)); err != ErrConnectRate {
		t.Fatalf("99ms later: %v, want %v", err, ErrConnectRate)
	}
	if err := l.admitAt(a, now.Add(200*time.Millisecond)); err != nil {
		t.Fatalf("200ms later: %v", err)
	}
	// Knocking at MaxPerIP spends the allowance too: by then the whole
	// burst is due again, two of them open, and the rest are spent
	// knocking.
	knock := now.Add(time.Second)
	for range 2 {
		if err := l.admitAt(a, knock); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := l.admitAt(a, knock); err != ErrTooManyFromIP {
			t.Fatalf("knock %d: %v, want %v", i, err, ErrTooManyFromIP)
		}
	}
	if err := l.admitAt(a, knock); err != ErrConnectRate {
		t.Fatalf("after knocking: %v, want %v", err, ErrConnectRate)
	}
	if st := l.Stats(); st.RefusedRate != 3 || st.RefusedPerIP != 3 {
		t.Fatalf("stats %+v, want 3 refused for the rate and 3 per address", st)
	}
}

// IPv6 addresses count per /64, for MaxPerIP and ConnectRate alike: a
// host given a /64 has 2^64 addresses.
func TestConnLimiterCountsIPv6By64(t *testing.T) {
	l := NewConnLimiter(ConnLimits{ConnectRate: 1, ConnectBurst: 2, MaxPerIP: 2, FileLimit: 1 << 20})
	now := time.Unix(1000, 0)
	for i, addr := range []string{"2001:db8:0:1::1", "2001:db8:0:1:ffff:ffff:ffff:ffff"} {
		if err := l.admitAt(netip.MustParseAddr(addr), now); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	for range 2 {
		if err := l.admitAt(netip.MustParseAddr("2001:db8:0:1::99"), now.Add(time.Hour)); err != ErrTooManyFromIP {
			t.Fatalf("a third from the /64: %v, want %v", err, ErrTooManyFromIP)
		}
	}
	if err := l.admitAt(netip.MustParseAddr("2001:db8:0:1::99"), now.Add(time.Hour)); err != ErrConnectRate {
		t.Fatalf("a fourth try from the /64: %v, want %v", err, ErrConnectRate)
	}
	if err := l.admitAt(netip.MustParseAddr("2001:db8:0:2::1"), now); err != nil {
		t.Fatalf("the next /64: %v", err)
	}
	l.release(netip.MustParseAddr("2001:db8:0:1::1"))
	if err := l.admitAt(netip.MustParseAddr("2001:db8:0:1::7"), now.Add(2*time.Hour)); err != nil {
		t.Fatalf("after one left: %v", err)
	}
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"", ""},
		{"pipe", "pipe"},
	} {
		if got := sourceKey(tc.in); got != tc.want {
			t.Errorf("sourceKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// However many addresses connect, the limiter keeps a rate for a bounded
// number of them, and forgets those whose allowance is whole again.
func TestConnectRatesStayBounded(t *testing.T) {
	cr := newConnectRates(10, 100) // whole again 10 s after the last connection
	now := time.Unix(1000, 0)
	for i := range 3 * maxConnectRates {
		ip := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0, 0, 1})
		cr.take(ip, now.Add(time.Duration(i)*time.Microsecond))
		if cr.size() > 2*maxConnectRates {
			t.Fatalf("%d addresses kept after %d", cr.size(), i+1)
		}
	}
	// The addresses of the last window are dropped at the next turn.
	one := netip.MustParseAddr("192.0.2.1")
	later := now.Add(time.Minute)
	for range 100 {
		cr.take(one, later)
	}
	if cr.take(one, later) {
		t.Fatal("the 101st at once was let in")
	}
	if n := cr.size(); n > maxConnectRates+1 {
		t.Fatalf("a window on, %d addresses kept", n)
	}
	// A window later: only the one seen since, still spent but for the 50
	// due by then.
	for range 50 {
		if !cr.take(one, later.Add(5*time.Second)) {
			t.Fatal("5 s later, 50 more are due")
		}
	}
	if cr.take(one, later.Add(5*time.Second)) {
		t.Fatal("the 51st 5 s later was let in")
	}
	cr.take(one, later.Add(11*time.Second))
	if n := cr.size(); n != 1 {
		t.Fatalf("two windows on, %d addresses kept, want 1", n)
	}
}

// A rate so slow that its window is longer than a time.Duration holds
// (--connect-rate takes any number above 0) still limits: an address's
// spent bucket is kept while others connect, not forgotten at each one.
func TestConnectRatesVerySlow(t *testing.T) {
	cr := newConnectRates(1e-15, 1)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	now := time.Unix(1000, 0)
	if !cr.take(a, now) || !cr.take(b, now.Add(time.Second)) {
		t.Fatal("the first connection of each address was refused")
	}
	if cr.take(a, now.Add(2*time.Second)) {
		t.Fatal("a's second connection was let in: its spent bucket was forgotten")
	}
}

// Over a real listener: a client that reconnects faster than the rate is
// refused with the reason, at once.
func TestConnLimiterRefusesConnectingTooFast(t *testing.T) {
	s := startLimited(t, ConnLimits{ConnectRate: 0.01, ConnectBurst: 3})
	for range 3 {
		s.dialFrom("127.0.0.1")
		s.take().Close()
	}
	s.refused(s.dialFrom("127.0.0.1"), ErrConnectRate)
	s.dialFrom("127.0.0.2")
	s.take()
	if st := s.lim.Stats(); st.RefusedRate != 1 {
		t.Fatalf("stats %+v, want 1 refused for the rate", st)
	}
}

// The hub's own count per address, for visitors a trusted proxy names,
// counts IPv6 by /64 too.
func TestHubCountsIPv6By64(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: 1}, nil)
	a, err := h.Connect(&fakeMember{}, ConnectInfo{Addr: "[2001:db8:0:1::1]:1", Nick: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Connect(&fakeMember{}, ConnectInfo{Addr: "[2001:db8:0:1::2]:1", Nick: "b"}); err != ErrTooManyFromIP {
		t.Fatalf("a second from the /64: %v, want %v", err, ErrTooManyFromIP)
	}
	if _, err := h.Connect(&fakeMember{}, ConnectInfo{Addr: "[2001:db8:0:2::1]:1", Nick: "c"}); err != nil {
		t.Fatalf("the next /64: %v", err)
	}
	a.Leave("")
	if _, err := h.Connect(&fakeMember{}, ConnectInfo{Addr: "[2001:db8:0:1::2]:1", Nick: "b"}); err != nil {
		t.Fatalf("after the first left: %v", err)
	}
}
