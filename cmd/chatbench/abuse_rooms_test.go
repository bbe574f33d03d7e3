package main

import (
	"strings"
	"testing"
)

func TestAbuseRoomFlags(t *testing.T) {
	ends := []string{"abuse", "--tcp", "127.0.0.1:1", "--ws", "ws://127.0.0.1:1/ws", "--quiet"}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no room to fill", []string{"--fill-rooms", "0"}, "--fill-rooms must be at least 1"},
		{"negative rooms", []string{"--fill-rooms", "-5"}, "--fill-rooms must be at least 1"},
		{"negative history memory", []string{"--history-memory", "-1"}, "--history-memory must not be negative"},
		{"history memory not a number", []string{"--history-memory", "64MiB"}, "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runArgs(t, append(ends, tt.args...)...)
			if code != exitUsage || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tt.wantErr)
			}
		})
	}
}

func TestDecodeEvents(t *testing.T) {
	tests := []struct {
		frame   string
		want    string // types, then rooms
		wantErr bool
	}{
		{`{"type":"hello","room":"lobby","to":"ann"}`, "hello:lobby", false},
		{`[{"type":"hello","room":"abuse-1"},{"type":"system","text":"x"},{"type":"presence","room":"abuse-1"}]`, "hello:abuse-1 system: presence:abuse-1", false},
		{`{"type":"history","events":[{"type":"message","text":"a"}]}`, "history:", false},
		{`[{"type":`, "", true},
		{`not json`, "", true},
	}
	for _, tt := range tests {
		evs, err := decodeEvents([]byte(tt.frame))
		if (err != nil) != tt.wantErr {
			t.Errorf("decodeEvents(%s): err %v", tt.frame, err)
			continue
		}
		if tt.wantErr {
			continue
		}
		var got []string
		for _, ev := range evs {
			got = append(got, ev.Type+":"+ev.Room)
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("decodeEvents(%s) = %q, want %q", tt.frame, got, tt.want)
		}
	}
}
