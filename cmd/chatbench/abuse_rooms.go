package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The abuse scenario's room checks: every room the server will make is
// taken before anyone has entered its default room, and then filled with
// the biggest lines, whose JSON a JSON client makes.

const (
	// jsonSubprotocol is chatbridge's JSON protocol (bridge.JSONProtocol).
	jsonSubprotocol = "chatbridge.v1.json"

	// historyLines is how many lines each room is said: the server's
	// default --history.
	historyLines = 20

	// historyText is the length of each of those lines' text: "<" but for
	// a tag, under the default --max-line of 4096. encoding/json writes
	// "<" as \u003c, so a line's JSON is 24 KB.
	historyText = 4000

	// fillBatch is how many rooms are asked for at once.
	fillBatch = 32
	fillFirst = 20 // the first source address is 127.0.0.1 + fillFirst
)

// roomFill is one WebSocket member alone in each room, JSON protocol, as
// many as the server would make rooms for.
type roomFill struct {
	members []*fillMember

	// What the server did with the member it had no room for.
	defaultRoom string // the room it was put in
	notice      string // what it was told
}

// fillMember is one member of a roomFill. It reads all the time, as a
// browser would, counting its own lines coming back.
type fillMember struct {
	ws     *websocket.Conn
	room   string
	name   string
	echoes atomic.Int64
	done   chan struct{}
}

// welcome is what a JSON member learns on arrival.
type welcome struct {
	room, name string
	notices    []string
	history    []string // the text of each line of the history event
}

// fillEvent is the part of a JSON event the fill reads.
type fillEvent struct {
	Type   string      `json:"type"`
	Room   string      `json:"room"`
	To     string      `json:"to"`
	Text   string      `json:"text"`
	Events []fillEvent `json:"events"`
}

// decodeEvents decodes a frame of the JSON protocol: one event, or an
// array of them.
func decodeEvents(frame []byte) ([]fillEvent, error) {
	if len(frame) > 0 && frame[0] == '[' {
		var evs []fillEvent
		return evs, json.Unmarshal(frame, &evs)
	}
	var ev fillEvent
	return []fillEvent{ev}, json.Unmarshal(frame, &ev)
}

// fillRooms opens members into rooms abuse-0, abuse-1, ..., fillBatch at
// a time, from 127.0.0.21 onwards (50 an address, clear of the attacks'
// addresses, whose connections per second are counted too), until the server puts one in another room or most are in.
// It returns what it got, and what went wrong, if anything.
func fillRooms(ctx context.Context, e *scenarioEnv, most int) (*roomFill, error) {
	cc := e.cc
	cc.wsOpts = wsOptions{subprotocol: jsonSubprotocol}
	d := cc.newDialer()
	defer d.closeIdle()
	first := fillFirst * d.perSource // 127.0.0.21
	f := &roomFill{}
	for start := 0; start < most && f.defaultRoom == ""; start += fillBatch {
		n := min(fillBatch, most-start)
		joined := make([]*fillMember, n)
		welcomes := make([]welcome, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				room := fmt.Sprintf("abuse-%d", start+i)
				joined[i], welcomes[i], errs[i] = joinRoom(ctx, d, e.cc.ws[0], room, first+start+i)
			})
		}
		wg.Wait()
		for i := range n {
			switch {
			case errs[i] != nil:
				f.close()
				for _, m := range joined {
					if m != nil {
						m.close()
					}
				}
				return nil, errs[i]
			case welcomes[i].room != fmt.Sprintf("abuse-%d", start+i):
				if f.defaultRoom == "" {
					f.defaultRoom, f.notice = welcomes[i].room, strings.Join(welcomes[i].notices, "; ")
				}
				joined[i].close()
			default:
				f.members = append(f.members, joined[i])
			}
		}
	}
	return f, nil
}

// joinRoom connects a JSON member asking for room, from the source address
// of slot, and reads its welcome. If it got room, it stays and reads on;
// otherwise the caller closes it.
func joinRoom(ctx context.Context, d *dialer, ep endpoint, room string, slot int) (*fillMember, welcome, error) {
	u, err := url.Parse(ep.url)
	if err != nil {
		return nil, welcome{}, err
	}
	q := u.Query()
	q.Set("room", room)
	u.RawQuery = q.Encode()
	ep.url = u.String()
	c, err := d.dial(ctx, ep, slot)
	if err != nil {
		return nil, welcome{}, fmt.Errorf("a member asking for room %s: %w", room, err)
	}
	ws := c.(*wsConn).c
	w, err := readWelcome(ctx, ws)
	if err != nil {
		ws.CloseNow()
		return nil, welcome{}, fmt.Errorf("a member asking for room %s: %w", room, err)
	}
	m := &fillMember{ws: ws, room: w.room, name: w.name, done: make(chan struct{})}
	go m.read()
	return m, w, nil
}

// readWelcome reads a JSON member's first events, up to the presence
// event that ends them.
func readWelcome(ctx context.Context, ws *websocket.Conn) (welcome, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var w welcome
	for {
		_, frame, err := ws.Read(ctx)
		if err != nil {
			return w, fmt.Errorf("no welcome: %w", err)
		}
		evs, err := decodeEvents(frame)
		if err != nil {
			return w, fmt.Errorf("welcome %.80q: %w", frame, err)
		}
		for _, ev := range evs {
			switch ev.Type {
			case "hello":
				w.room, w.name = ev.Room, ev.To
			case "system", "error":
				w.notices = append(w.notices, ev.Text)
			case "history":
				for _, line := range ev.Events {
					w.history = append(w.history, line.Text)
				}
			case "presence":
				if w.room == "" {
					return w, errors.New("presence before hello")
				}
				return w, nil
			}
		}
	}
}

// read counts the member's own lines coming back until the connection
// ends. The member is alone in its room, so every message is its own; and
// since a quote in a text is escaped, each `"type":"message"` in a frame
// is one, alone or in a batch. (Decoding 24 KB of JSON per line to find
// out was most of the load tool's CPU.)
func (m *fillMember) read() {
	defer close(m.done)
	marker := []byte(`"type":"message"`)
	for {
		_, frame, err := m.ws.Read(context.Background())
		if err != nil {
			return
		}
		m.echoes.Add(int64(bytes.Count(frame, marker)))
	}
}

// say sends text as a message. It is sent as it is, not escaped
// (json.Marshal would make each "<" six bytes, and the message too long
// for the server): what the fill says needs no escaping.
func (m *fillMember) say(ctx context.Context, text string) error {
	if strings.ContainsAny(text, "\"\\") {
		return fmt.Errorf("%.20q needs escaping", text)
	}
	b := []byte(`{"type":"message","text":"` + text + `"}`)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return m.ws.Write(ctx, websocket.MessageText, b)
}

// waitEchoes waits until the member has had n of its lines back.
func (m *fillMember) waitEchoes(ctx context.Context, n int64) bool {
	for m.echoes.Load() < n {
		select {
		case <-m.done:
			return m.echoes.Load() >= n
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

func (m *fillMember) close() {
	m.ws.CloseNow()
	<-m.done
}

func (f *roomFill) close() {
	for _, m := range f.members {
		m.close()
	}
}

// sayHistory has every member say historyLines lines of historyText
// bytes into its room, each once the one before has come back (the server
// has kept it and made its JSON), ten at once and then ten a second, under
// the server's default flood limit (twenty at once, ten a second). One
// line at a time per member keeps what is on its way to the members small:
// what the server's RSS then shows is mostly what it keeps. It returns how
// many lines came back.
func (f *roomFill) sayHistory(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	pad := strings.Repeat("<", historyText)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for _, m := range f.members {
		wg.Go(func() {
			start := m.echoes.Load()
			for i := range historyLines {
				if i >= 10 && sleepCtx(ctx, 100*time.Millisecond) != nil {
					break
				}
				text := fmt.Sprintf("%s-%02d %s", m.room, i, pad)
				if err := m.say(ctx, text[:historyText]); err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", m.name, err))
					return
				}
				if !m.waitEchoes(ctx, start+int64(i)+1) {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s in %s had %d of its %d lines back", m.name, m.room, m.echoes.Load()-start, i+1))
					return
				}
			}
		})
	}
	wg.Wait()
	var back int64
	for _, m := range f.members {
		back += m.echoes.Load()
	}
	if err, _ := firstErr.Load().(error); err != nil {
		return back, err
	}
	return back, nil
}

// newestSurvives has the first member say one more line, which makes its
// room the most recently active, and a new JSON member visit that room:
// its history must end with that line, however much history the server
// has had to forget. It returns the history's length.
func (f *roomFill) newestSurvives(ctx context.Context, e *scenarioEnv) (int, error) {
	m := f.members[0]
	fresh := fmt.Sprintf("the newest line of %s", m.room)
	before := m.echoes.Load()
	if err := m.say(ctx, fresh); err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !m.waitEchoes(wctx, before+1) {
		return 0, fmt.Errorf("%q did not come back", fresh)
	}
	cc := e.cc
	cc.wsOpts = wsOptions{subprotocol: jsonSubprotocol}
	d := cc.newDialer()
	defer d.closeIdle()
	visitor, w, err := joinRoom(ctx, d, e.cc.ws[0], m.room, fillFirst*d.perSource+len(f.members))
	if err != nil {
		return 0, err
	}
	visitor.close()
	switch {
	case w.room != m.room:
		return 0, fmt.Errorf("the visitor was put in %s", w.room)
	case len(w.history) == 0 || w.history[len(w.history)-1] != fresh:
		return len(w.history), fmt.Errorf("the history of %s (%d lines) does not end with %q", m.room, len(w.history), fresh)
	}
	return len(w.history), nil
}

// defaultRoomCheck connects a telnet member once every room is taken: it
// must be welcomed in the default room, be told when it asks for a room
// that cannot be made, and be answered.
func defaultRoomCheck(ctx context.Context, tcpAddr, defaultRoom string) error {
	c, err := dialLines(ctx, tcpAddr)
	if err != nil {
		return fmt.Errorf("telnet: %w", err)
	}
	defer c.close()
	line, err := c.until("Welcome", 5*time.Second)
	if err != nil {
		return fmt.Errorf("telnet: %w", err)
	}
	if want := "You are in " + defaultRoom + "."; !strings.Contains(line, want) {
		return fmt.Errorf("telnet welcomed with %q, not %q", line, want)
	}
	if err := c.send("/join abuse-one-more"); err != nil {
		return err
	}
	if _, err := c.until("cannot be made", 5*time.Second); err != nil {
		return fmt.Errorf("telnet asking for one more room: %w", err)
	}
	if err := c.send("/rooms"); err != nil {
		return err
	}
	if _, err := c.until("rooms: ", 5*time.Second); err != nil {
		return fmt.Errorf("telnet asking /rooms: %w", err)
	}
	return nil
}
