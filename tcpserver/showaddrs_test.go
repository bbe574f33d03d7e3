package tcpserver

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestShowAddressesByTransport(t *testing.T) {
	const addr = "192.0.2.7:4711"
	tests := []struct {
		policy    ShowAddrs
		transport string
		shown     bool
	}{
		{ShowAddrsTCP, "tcp", true},
		{ShowAddrsTCP, "ws", false},
		{ShowAddrsTCP, "", false}, // a transport nobody decided for shows nothing
		{ShowAddrsAll, "tcp", true},
		{ShowAddrsAll, "ws", true},
		{ShowAddrsNone, "tcp", false},
		{ShowAddrsNone, "ws", false},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String()+"/"+tt.transport, func(t *testing.T) {
			relay := &recordingRelay{}
			h := NewHub(HubConfig{AnnounceDelay: -1, MaxPerIP: -1, ShowAddresses: tt.policy, Relay: relay}, nil)
			_, watcher := connect(t, h, "watcher")
			watcher.lines()
			c, err := h.Connect(&fakeMember{}, ConnectInfo{Addr: addr, Transport: tt.transport, Nick: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			c.Leave("too slow")

			watcher.mu.Lock()
			seen := watcher.events
			watcher.mu.Unlock()
			relay.mu.Lock()
			published := relay.events
			relay.mu.Unlock()
			// The watcher's own join went to the relay first.
			if len(seen) != 2 || len(published) != 3 {
				t.Fatalf("watcher got %d events, relay %d; want 2 and 3", len(seen), len(published))
			}
			for i, ev := range seen {
				want := []string{"alice joined", "alice left (too slow)"}[i]
				if tt.shown {
					want = strings.Replace(want, "alice", "alice ("+addr+")", 1)
				}
				if line := strings.TrimSpace(string(ev.Line())); !strings.HasSuffix(line, " "+want) {
					t.Errorf("text line %q, want it to end in %q", line, want)
				}
				var w struct {
					Addr *string `json:"addr"`
				}
				if err := json.Unmarshal(ev.JSON(), &w); err != nil {
					t.Fatal(err)
				}
				switch {
				case tt.shown && (w.Addr == nil || *w.Addr != addr):
					t.Errorf("JSON %s lacks addr %q", ev.JSON(), addr)
				case !tt.shown && w.Addr != nil:
					t.Errorf("JSON %s has an addr", ev.JSON())
				}
				if rel := published[i+1]; rel.Kind != ev.Kind || (rel.Addr != "") != tt.shown {
					t.Errorf("relay got %s with addr %q; shown should be %v", rel.Kind, rel.Addr, tt.shown)
				}
			}
		})
	}
}

// A node that shows no address shows none from the other nodes either.
func TestDeliverHidesAddressesWhenShowingNone(t *testing.T) {
	for _, policy := range []ShowAddrs{ShowAddrsTCP, ShowAddrsAll, ShowAddrsNone} {
		t.Run(policy.String(), func(t *testing.T) {
			h := NewHub(HubConfig{MaxPerIP: -1, ShowAddresses: policy}, nil)
			_, bm := connect(t, h, "bob")
			bm.lines()
			ev := &Event{Kind: KindJoin, Room: "lobby", From: "carol", Addr: "192.0.2.9:1", Node: "a", NodeID: 4}
			h.Deliver(ev)
			want := "*** carol (192.0.2.9:1) joined"
			if policy == ShowAddrsNone {
				want = "*** carol joined"
				if strings.Contains(string(ev.JSON()), "192.0.2.9") {
					t.Errorf("JSON %s carries the address", ev.JSON())
				}
			}
			if got := bm.lines(); len(got) != 1 || got[0] != want {
				t.Fatalf("bob got %q, want %q", got, want)
			}
		})
	}
}

func TestShowAddrsText(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ShowAddrs
		err  string
	}{
		{"tcp", ShowAddrsTCP, ""},
		{"all", ShowAddrsAll, ""},
		{"none", ShowAddrsNone, ""},
		{"", 0, `"": want tcp, all or none`},
		{"TCP", 0, "want tcp, all or none"},
		{"ws", 0, "want tcp, all or none"},
		{" all", 0, "want tcp, all or none"},
		{strings.Repeat("x", 1<<20), 0, `"xxxxxxxxxxxxxxxx...": want`},
	} {
		var s ShowAddrs
		err := s.UnmarshalText([]byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || len(err.Error()) > 100 {
				t.Errorf("UnmarshalText(%.20q) = %v, want an error with %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || s != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v", tt.in, s, err)
		}
		if b, _ := s.MarshalText(); string(b) != tt.in {
			t.Errorf("MarshalText(%v) = %q", s, b)
		}
	}
}
