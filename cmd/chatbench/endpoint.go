package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// errNotLoopback marks a refused target. chatbench only ever talks to this
// machine's loopback: a load tool pointed elsewhere by a typo is a flood.
var errNotLoopback = errors.New("not a loopback address (chatbench only talks to 127.0.0.0/8 and ::1)")

// endpoint is one server address to connect to, already resolved and checked
// to be loopback. dialAddr is what the tool dials; the name the user gave is
// kept for the WebSocket URL (and its Host header) and for messages.
type endpoint struct {
	ws       bool
	ssh      bool   // chatbridge's SSH door (a --tcp value of ssh://host:port)
	given    string // as given on the command line
	url      string // ws only
	dialAddr string // "ip:port", loopback
	ipv4     bool
}

// resolveEndpoints checks and resolves every --tcp and --ws value. A
// --tcp value of ssh://host:port is chatbridge's SSH door.
func resolveEndpoints(ctx context.Context, tcp, ws []string) (tcpEPs, wsEPs []endpoint, err error) {
	for _, s := range tcp {
		hostport, isSSH := strings.CutPrefix(s, sshPrefix)
		if strings.Contains(hostport, "://") {
			return nil, nil, fmt.Errorf("--tcp %q: want host:port (or ssh://host:port), not a URL: %w", s, errUsage)
		}
		addr, err := resolveLoopback(ctx, hostport)
		if err != nil {
			return nil, nil, fmt.Errorf("--tcp %q: %w", s, err)
		}
		tcpEPs = append(tcpEPs, endpoint{given: s, ssh: isSSH, dialAddr: addr.String(), ipv4: addr.Addr().Is4()})
	}
	for _, s := range ws {
		u, err := url.Parse(s)
		if err != nil {
			return nil, nil, fmt.Errorf("--ws %q: %w", s, err)
		}
		if u.Scheme != "ws" && u.Scheme != "wss" {
			return nil, nil, fmt.Errorf("--ws %q: want a ws:// URL (or wss://): %w", s, errUsage)
		}
		hostport := u.Host
		if u.Port() == "" {
			hostport = net.JoinHostPort(u.Hostname(), defaultPort(u.Scheme))
		}
		addr, err := resolveLoopback(ctx, hostport)
		if err != nil {
			return nil, nil, fmt.Errorf("--ws %q: %w", s, err)
		}
		wsEPs = append(wsEPs, endpoint{ws: true, given: s, url: s, dialAddr: addr.String(), ipv4: addr.Addr().Is4()})
	}
	return tcpEPs, wsEPs, nil
}

// defaultPort is the port of a ws:// or wss:// URL that names none.
func defaultPort(scheme string) string {
	if scheme == "wss" {
		return "443"
	}
	return "80"
}

// resolveLoopback resolves host:port and insists that every address the name
// has is loopback, so that no resolver answer can send traffic elsewhere.
func resolveLoopback(ctx context.Context, hostport string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("split host and port: %w: %w", err, errUsage)
	}
	portNum, err := net.LookupPort("tcp", port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q: %w: %w", port, err, errUsage)
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("resolve %q: %w", host, err)
		}
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %q: no addresses", host)
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return netip.AddrPort{}, fmt.Errorf("%s resolves to %s: %w", host, a, errNotLoopback)
		}
	}
	// Prefer IPv4: only there can a large run spread over 127.0.0.2, ....
	best := addrs[0].Unmap()
	for _, a := range addrs {
		if a.Unmap().Is4() {
			best = a.Unmap()
			break
		}
	}
	return netip.AddrPortFrom(best, uint16(portNum)), nil
}

// checkListenLoopback applies the same rule to the ceiling server's address.
func checkListenLoopback(ctx context.Context, hostport string) (string, error) {
	addr, err := resolveLoopback(ctx, hostport)
	if err != nil {
		return "", fmt.Errorf("--listen %q: %w", hostport, err)
	}
	return addr.String(), nil
}
