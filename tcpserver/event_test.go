package tcpserver

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNoticesCannotBeForged: every line the server says itself starts
// with "*** ", and no line a member can make does, whatever the member
// types: "/me is now known as alice" shows as an action, not as a name
// change, live and in the history a newcomer is given.
func TestNoticesCannotBeForged(t *testing.T) {
	h := NewHub(HubConfig{MaxPerIP: -1, Rate: -1}, nil)
	mallory, _ := connect(t, h, "mallory")
	alice, am := connect(t, h, "alice")
	for _, l := range []string{
		"/me is now known as alice",
		"/me (10.0.0.7:51234) left",
		"/me server shutting down",
		"*** server shutting down",
		"/me ** bold",
		"/msg alice *** you have been kicked",
		"/nick mallory2",
		"/me 1 in lobby: mallory2",
	} {
		mallory.Handle([]byte(l))
	}
	mallory.Leave("")
	carol, cm := connect(t, h, "carol") // gets the history
	carol.Handle([]byte("/help"))
	carol.Handle([]byte("/rooms"))
	carol.Handle([]byte("/nosuch"))
	alice.Leave("")

	said := 0
	check := func(who string, m *fakeMember) {
		t.Helper()
		m.mu.Lock()
		events := m.events
		m.mu.Unlock()
		var saw []Kind
		for _, ev := range events {
			saw = append(saw, ev.Kind)
			lines := []*Event{ev}
			if ev.Kind == KindHistory || ev.Kind == KindBatch {
				lines = ev.Events
			}
			for _, l := range lines {
				text := strings.TrimSuffix(string(l.Line()), "\r\n")
				switch l.Kind {
				case KindMessage, KindAction, KindPrivate:
					said++
					if strings.HasPrefix(text, "***") {
						t.Errorf("%s: %v line %q, made by a member, starts like a notice", who, l.Kind, text)
					}
				case KindError:
					if !strings.HasPrefix(text, "! ") {
						t.Errorf("%s: error %q does not start with \"! \"", who, text)
					}
				default:
					if !strings.HasPrefix(text, "*** ") {
						t.Errorf("%s: %v notice %q does not start with \"*** \"", who, l.Kind, text)
					}
				}
			}
		}
		for _, k := range []Kind{KindHello, KindPresence} {
			if !slices.Contains(saw, k) {
				t.Errorf("%s saw no %v", who, k)
			}
		}
	}
	check("alice", am)
	check("carol", cm)
	if said < 8 {
		t.Fatalf("only %d member lines checked", said)
	}
	if got := am.lines(); !slices.Contains(got, "* mallory is now known as alice") ||
		!slices.Contains(got, "*** mallory is now known as mallory2") ||
		!slices.Contains(got, "*** mallory2 (192.0.2.1:1000) left") ||
		!slices.Contains(got, "<mallory> *** server shutting down") {
		t.Fatalf("alice saw %q", got)
	}
}

// TestNoticeKinds pins the form of each kind of line the text protocol
// sends, so that the notices' prefix cannot drift from the one place that
// says it.
func TestNoticeKinds(t *testing.T) {
	tests := []struct {
		ev   *Event
		want string
	}{
		{&Event{Kind: KindMessage, From: "bob", Text: "hi"}, "<bob> hi"},
		{&Event{Kind: KindAction, From: "bob", Text: "waves"}, "* bob waves"},
		{&Event{Kind: KindPrivate, From: "bob", To: "ann", Text: "psst"}, "*bob* psst"},
		{&Event{Kind: KindPrivate, From: "bob", To: "ann", Text: "psst", Echo: true}, "-> *ann* psst"},
		{&Event{Kind: KindJoin, From: "bob", Addr: "192.0.2.1:5"}, "*** bob (192.0.2.1:5) joined"},
		{&Event{Kind: KindLeave, From: "bob", Text: "too slow"}, "*** bob left (too slow)"},
		{&Event{Kind: KindNick, From: "bob", To: "rob"}, "*** bob is now known as rob"},
		{&Event{Kind: KindSystem, Text: "server shutting down"}, "*** server shutting down"},
		{&Event{Kind: KindHello, Text: "Welcome"}, "*** Welcome"},
		{&Event{Kind: KindPresence, Room: "lobby", Names: []string{"ann", "bob"}, Count: 3}, "*** 3 in lobby: ann, bob and 1 more"},
		{&Event{Kind: KindError, Text: "no"}, "! no"},
	}
	for _, tt := range tests {
		if got := string(tt.ev.finish().Line()); got != tt.want+"\r\n" {
			t.Errorf("%v: %q, want %q", tt.ev.Kind, got, tt.want+"\r\n")
		}
	}
	if got := string(noticeLine("too many connections from your address")); got != "*** too many connections from your address\r\n" {
		t.Errorf("noticeLine = %q", got)
	}
}

// TestHistoryLines: a replayed history's lines carry the time they were
// said, in UTC, with the date when it was not the day of the replay, and
// a notice ends it, so that a newcomer can tell them from live lines. The
// JSON keeps the lines as they were.
func TestHistoryLines(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	replay := time.Date(2025, 3, 14, 0, 30, 0, 0, time.UTC)
	at := func(y int, m time.Month, d, h, min int, loc *time.Location) time.Time {
		return time.Date(y, m, d, h, min, 59, 0, loc)
	}
	lines := []*Event{
		(&Event{Kind: KindMessage, From: "alice", Text: "same day", Time: at(2025, 3, 14, 0, 2, time.UTC)}).finish(),
		(&Event{Kind: KindAction, From: "bob", Text: "waves", Time: at(2025, 3, 13, 23, 58, time.UTC)}).finish(),
		(&Event{Kind: KindMessage, From: "carl", Text: "from Paris", Time: at(2025, 3, 14, 1, 15, paris)}).finish(),
		(&Event{Kind: KindMessage, From: "dora", Text: "late last year", Time: at(2024, 12, 31, 9, 5, paris)}).finish(),
		(&Event{Kind: KindMessage, From: "eve", Text: "no time"}).finish(),
	}
	tests := []struct {
		name   string
		events []*Event
		want   []string
	}{
		{"times and dates", lines, []string{
			"[00:02] <alice> same day",
			"[2025-03-13 23:58] * bob waves",
			"[00:15] <carl> from Paris",
			"[2024-12-31 08:05] <dora> late last year",
			"<eve> no time",
			"*** end of history: 5 earlier lines, times in UTC",
		}},
		{"one line", lines[:1], []string{"[00:02] <alice> same day", "*** end of history: 1 earlier line, times in UTC"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := (&Event{Kind: KindHistory, Room: "lobby", Time: replay, Events: tt.events}).finish()
			if got, want := string(ev.Line()), strings.Join(tt.want, "\r\n")+"\r\n"; got != want {
				t.Errorf("history\n%s\nwant\n%s", got, want)
			}
			var w struct {
				Events []struct{ Text string }
			}
			if err := json.Unmarshal(ev.JSON(), &w); err != nil || len(w.Events) != len(tt.events) || w.Events[0].Text != tt.events[0].Text {
				t.Errorf("JSON %s: %v", ev.JSON(), err)
			}
		})
	}
	// A batch is its lines, as they are.
	batch := (&Event{Kind: KindBatch, Events: lines[:2], Time: replay}).finish()
	if got := string(batch.Line()); got != "<alice> same day\r\n* bob waves\r\n" {
		t.Errorf("batch %q", got)
	}
}
