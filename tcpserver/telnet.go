package tcpserver

import "bytes"

// Telnet command bytes (RFC 854). Real telnet clients may send option
// negotiation at any time; none of it is chat text.
const (
	telnetSE   = 240
	telnetAYT  = 246 // are you there
	telnetSB   = 250
	telnetWILL = 251
	telnetWONT = 252
	telnetDO   = 253
	telnetDONT = 254
	telnetIAC  = 255

	// telnetTimingMark is the TIMING-MARK option (RFC 860). On Ctrl-C
	// (or Ctrl-\, Ctrl-Z) telnet sends IAC IP IAC DO TIMING-MARK and
	// throws away everything it receives until the mark is answered.
	telnetTimingMark = 6
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
// With answer set it also answers the negotiation the client starts (see
// telnetAnswers); the server never starts any itself, so a client that
// sends no IAC (nc, the seed's clients) never receives one.
//
// The zero value is ready to use, answers nothing and costs a few bytes;
// the answering state is made at the first negotiation to answer.
type telnetDecoder struct {
	state  telnetState
	verb   byte // in tnOpt: WILL, WONT, DO or DONT
	answer bool // answer negotiation (TCP members only)
	q      *telnetAnswers
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
				t.state, t.verb = tnOpt, c
			case c == telnetSB:
				t.state = tnSB
			default:
				// Two-byte commands. IP, BRK, SUSP and ABORT interrupt
				// nothing here: there is no process to stop, and the
				// DO TIMING-MARK that follows them is answered. AO is
				// ignored too: what is queued for the member is what
				// others said, not output of theirs to abort. EC and EL
				// edit a line the client's terminal already edited (in
				// line mode they are only sent on request); NOP, GA,
				// DM and a stray SE mean nothing. AYT is answered.
				if c == telnetAYT && t.answer {
					q := t.answers()
					q.ayt, q.waiting = true, true
				}
				t.state = tnData
			}
		case tnOpt:
			if t.answer {
				t.answers().negotiate(t.verb, c)
			}
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

func (t *telnetDecoder) answers() *telnetAnswers {
	if t.q == nil {
		t.q = new(telnetAnswers)
	}
	return t.q
}

// take returns the answers waiting, as an event for the member's queue, so
// that they go out in order with what the member is sent, and forgets
// them; nil if there are none.
func (t *telnetDecoder) take() *Event {
	if t.q == nil || !t.q.waiting {
		return nil
	}
	return t.q.take()
}

// telnetAnswers is what a telnetDecoder needs to answer a client's option
// negotiation, by the Q method of RFC 1143 for a side that wants no option
// on: a DO is answered WONT and a WILL is answered DONT; a DONT or a WONT,
// which agrees with us, is never answered, so our answers, which are
// refusals, can start no loop. DO TIMING-MARK is answered WILL TIMING-MARK
// each time it comes (RFC 860: the mark is a reply, not a state).
//
// Bounded: an option is refused once, and again only after the client
// has said DONT (or WONT) for it, and the answers a read asks for are
// gathered into one set, sent as one event after the read, whatever the
// read holds: at most a refusal per option, one WILL TIMING-MARK and one
// AYT line. A client that sends a million DO requests gets one WONT for
// each option it named, and a mark per read that asked for one; a client
// that does not read what it is sent is cut off as too slow, as any.
type telnetAnswers struct {
	refused [2][4]uint64 // [0] options we said WONT to, [1] DONT to, not since taken back
	wont    [4]uint64    // WONT to send
	dont    [4]uint64    // DONT to send

	timingMark bool // WILL TIMING-MARK to send
	markOn     bool // we said WILL TIMING-MARK and the client has not said DONT
	markOff    bool // WONT TIMING-MARK to send: the client said DONT after our WILL
	ayt        bool // an answer to AYT to send
	waiting    bool // any of the above
}

func (q *telnetAnswers) negotiate(verb, opt byte) {
	w, bit := opt>>6, uint64(1)<<(opt&63)
	switch verb {
	case telnetDO:
		if opt == telnetTimingMark {
			q.timingMark, q.markOn, q.markOff, q.waiting = true, true, false, true
			return
		}
		if q.refused[0][w]&bit == 0 {
			q.refused[0][w] |= bit
			q.wont[w] |= bit
			q.waiting = true
		}
	case telnetDONT:
		if opt == telnetTimingMark {
			if q.markOn {
				q.markOn, q.markOff, q.waiting = false, true, true
			}
			return
		}
		q.refused[0][w] &^= bit // the client may ask again
	case telnetWILL:
		if q.refused[1][w]&bit == 0 {
			q.refused[1][w] |= bit
			q.dont[w] |= bit
			q.waiting = true
		}
	case telnetWONT:
		q.refused[1][w] &^= bit
	}
}

// willTimingMark is the answer to the usual negotiation, telnet's Ctrl-C,
// and willTimingMarkEvent the event that carries it, shared: nobody may
// change either.
var (
	willTimingMark      = []byte{telnetIAC, telnetWILL, telnetTimingMark}
	willTimingMarkEvent = &Event{Kind: KindSystem, line: willTimingMark}
)

// aytAnswer is the answer to AYT (are you there): a notice line.
const aytAnswer = noticePrefix + "[yes]\r\n"

// take returns the answers waiting as an event, and forgets them. The
// usual lone WILL TIMING-MARK is one event shared by every member, so
// Ctrl-C allocates nothing.
func (q *telnetAnswers) take() *Event {
	defer q.reset()
	if q.timingMark && !q.ayt && !q.markOff && q.wont == [4]uint64{} && q.dont == [4]uint64{} {
		return willTimingMarkEvent
	}
	var b []byte
	for i, set := range [2]*[4]uint64{&q.wont, &q.dont} {
		verb := byte(telnetWONT + 2*i)
		for w, bits := range set {
			for opt := 0; bits != 0; opt++ {
				if bits&1 != 0 {
					b = append(b, telnetIAC, verb, byte(w<<6+opt))
				}
				bits >>= 1
			}
		}
	}
	if q.timingMark {
		b = append(b, willTimingMark...)
	}
	if q.markOff {
		b = append(b, telnetIAC, telnetWONT, telnetTimingMark)
	}
	if q.ayt {
		b = append(b, aytAnswer...)
	}
	// KindSystem, for want of a kind of its own: the event only ever goes
	// to the TCP member whose client asked, and only its line is read.
	return &Event{Kind: KindSystem, line: b}
}

func (q *telnetAnswers) reset() {
	q.wont, q.dont = [4]uint64{}, [4]uint64{}
	q.timingMark, q.markOff, q.ayt, q.waiting = false, false, false, false
}
