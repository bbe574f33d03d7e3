package tcpserver

import (
	"fmt"
	"testing"
)

// BenchmarkConnectLeave is a member coming into a room of 1,000 and
// going: what a connection costs the hub, besides its transport.
func BenchmarkConnectLeave(b *testing.B) {
	h := NewHub(HubConfig{MaxPerIP: -1, MaxClients: -1, Rate: -1}, nil)
	for i := range 1000 {
		c, err := h.Connect(discardMember{}, ConnectInfo{Addr: fmt.Sprintf("192.0.2.1:%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		c.Handle([]byte("here a while")) // announced
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := h.Connect(discardMember{}, ConnectInfo{Addr: "192.0.2.2:1"})
		if err != nil {
			b.Fatal(err)
		}
		c.Leave("")
	}
}
