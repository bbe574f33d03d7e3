package tcpserver

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestPause(t *testing.T) {
	var p Pause
	var calls atomic.Int32
	ready := make(chan time.Time, 4)
	start := func() { calls.Add(1); ready <- time.Now() }

	// Sleep calls ready once, after the time given.
	t0 := time.Now()
	if !p.Sleep(50*time.Millisecond, start) || !p.Paused() {
		t.Fatal("Sleep did not pause")
	}
	select {
	case at := <-ready:
		if at.Sub(t0) < 50*time.Millisecond {
			t.Fatalf("ready after %v, before its time", at.Sub(t0))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ready not called")
	}
	if p.Paused() {
		t.Fatal("still paused after ready")
	}

	// Wake cuts a pause short, and no later Sleep pauses.
	if !p.Sleep(time.Hour, start) {
		t.Fatal("second Sleep did not pause")
	}
	p.Wake()
	select {
	case <-ready:
	case <-time.After(2 * time.Second):
		t.Fatal("Wake did not call ready")
	}
	if p.Sleep(time.Millisecond, start) {
		t.Fatal("Sleep paused after Wake")
	}
	p.Wake() // nothing due: nothing called
	time.Sleep(20 * time.Millisecond)
	if n := calls.Load(); n != 2 {
		t.Fatalf("ready called %d times, want 2", n)
	}
}

// A Wake racing the timer starts exactly one reader.
func TestPauseWakeRacesTimer(t *testing.T) {
	for range 200 {
		var p Pause
		var calls atomic.Int32
		done := make(chan struct{}, 2)
		p.Sleep(time.Microsecond, func() { calls.Add(1); done <- struct{}{} })
		p.Wake()
		<-done
		time.Sleep(50 * time.Microsecond)
		if n := calls.Load(); n != 1 {
			t.Fatalf("ready called %d times", n)
		}
	}
}
