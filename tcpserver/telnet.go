package tcpserver

import "bytes"

// Telnet command bytes (RFC 854). Real telnet clients may send option
// negotiation at any time; none of it is chat text.
const (
	telnetSE   = 240
	telnetSB   = 250
	telnetWILL = 251
	telnetDONT = 254
	telnetIAC  = 255
)

type telnetState uint8

const (
	tnData  telnetState = iota
	tnIAC               // after IAC
	tnOpt               // after IAC WILL/WONT/DO/DONT: one option byte follows
	tnSB                // inside a subnegotiation, up to IAC SE
	tnSBIAC             // IAC inside a subnegotiation
)

// telnetDecoder strips telnet command sequences from a byte stream. It
// keeps its state between calls, so a sequence split across two reads is
// still removed whole. IAC IAC is an escaped 0xFF data byte and is kept as
// one 0xFF (which later becomes U+FFFD, since it is never valid UTF-8).
//
// The zero value is ready to use and costs one byte.
type telnetDecoder struct {
	state telnetState
}

// decode removes telnet commands from p in place and returns the data
// bytes that remain, a prefix of p.
func (t *telnetDecoder) decode(p []byte) []byte {
	// Fast path: no command in flight and no IAC in p.
	if t.state == tnData {
		i := bytes.IndexByte(p, telnetIAC)
		if i < 0 {
			return p
		}
	}
	n := 0
	for _, c := range p {
		switch t.state {
		case tnData:
			if c == telnetIAC {
				t.state = tnIAC
				continue
			}
			p[n] = c
			n++
		case tnIAC:
			switch {
			case c == telnetIAC:
				p[n] = c
				n++
				t.state = tnData
			case c >= telnetWILL && c <= telnetDONT:
				t.state = tnOpt
			case c == telnetSB:
				t.state = tnSB
			default: // NOP, GA, IP, AYT, ... and a stray SE: two-byte commands
				t.state = tnData
			}
		case tnOpt:
			t.state = tnData
		case tnSB:
			if c == telnetIAC {
				t.state = tnSBIAC
			}
		case tnSBIAC:
			if c == telnetSE {
				t.state = tnData
			} else {
				t.state = tnSB
			}
		}
	}
	return p[:n]
}
