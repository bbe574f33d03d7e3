package natsrelay

import (
	"bytes"
	"errors"
	"testing"
)

// testSecret is the cluster secret of the tests' nodes.
const testSecret = "a test secret, long enough"

func TestSealOpensOnlyWhatWasSealed(t *testing.T) {
	s, err := newSealer([]byte(testSecret), "chat")
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"v":2,"from":"alice","text":"hi"}`)
	msg := s.seal(nil, purposeEvent, "chat.room.lobby.line", payload)
	if got, err := s.open(s.newHash(), purposeEvent, "chat.room.lobby.line", msg); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("open = %q, %v", got, err)
	}

	other := func(secret, prefix string) *sealer {
		o, err := newSealer([]byte(secret), prefix)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	flip := func(i int) []byte {
		b := bytes.Clone(msg)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name             string
		s                *sealer
		purpose, subject string
		msg              []byte
	}{
		{"another secret", other("another secret, long enough", "chat"), purposeEvent, "chat.room.lobby.line", msg},
		{"another prefix, same secret", other(testSecret, "chat2"), purposeEvent, "chat.room.lobby.line", msg},
		{"no secret", other("", "chat"), purposeEvent, "chat.room.lobby.line", msg},
		{"moved to another room", s, purposeEvent, "chat.room.dev.line", msg},
		{"taken for another purpose", s, purposeName, "chat.room.lobby.line", msg},
		{"a payload byte changed", s, purposeEvent, "chat.room.lobby.line", flip(len(msg) - 3)},
		{"a MAC byte changed", s, purposeEvent, "chat.room.lobby.line", flip(5)},
		{"the dot changed", s, purposeEvent, "chat.room.lobby.line", flip(macLen)},
		{"payload appended", s, purposeEvent, "chat.room.lobby.line", append(bytes.Clone(msg), ' ')},
		{"payload cut", s, purposeEvent, "chat.room.lobby.line", msg[:len(msg)-1]},
		{"unsealed JSON", s, purposeEvent, "chat.room.lobby.line", payload},
		{"empty", s, purposeEvent, "chat.room.lobby.line", nil},
		{"just a MAC", s, purposeEvent, "chat.room.lobby.line", msg[:sealedMin]},
		{"subject and payload boundary moved", s, purposeEvent, "chat.room.lobby.line\x00{", msg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := tt.s.open(nil, tt.purpose, tt.subject, tt.msg); !errors.Is(err, errUnverified) {
				t.Fatalf("open = %q, %v; want errUnverified", got, err)
			}
		})
	}
}

func TestPrivateTextIsHidden(t *testing.T) {
	s, err := newSealer([]byte(testSecret), "chat")
	if err != nil {
		t.Fatal(err)
	}
	nonce := newNonce()
	sealed := s.hide(nonce, "the password is swordfish")
	if bytes.Contains(sealed, []byte("swordfish")) {
		t.Fatal("the text shows through")
	}
	if got, err := s.reveal(nonce, sealed); err != nil || got != "the password is swordfish" {
		t.Fatalf("reveal = %q, %v", got, err)
	}
	if _, err := s.reveal(newNonce(), sealed); err == nil {
		t.Fatal("revealed under another nonce")
	}
	other, _ := newSealer([]byte("another secret, long enough"), "chat")
	if _, err := other.reveal(nonce, sealed); err == nil {
		t.Fatal("revealed with another secret")
	}
}

// BenchmarkSealOpen is the cost a room event pays on each side: one seal
// where it is made, one open per node it reaches.
func BenchmarkSealOpen(b *testing.B) {
	s, _ := newSealer([]byte(testSecret), "chatbridge")
	payload := []byte(`{"v":2,"node":"n0123456789ab","sess":"0123456789abcdef","seq":123456,"id":98765,"kind":"message","room":"lobby","from":"alice","text":"a line of chat of a usual length, give or take","time":1767225600000000000}`)
	h := s.newHash()
	b.ReportAllocs()
	for b.Loop() {
		msg := s.seal(h, purposeEvent, "chatbridge.room.lobby.line", payload)
		if _, err := s.open(h, purposeEvent, "chatbridge.room.lobby.line", msg); err != nil {
			b.Fatal(err)
		}
	}
}
