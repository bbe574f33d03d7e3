package main

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name     string
		line     string
		wantPPID int
		wantCPU  uint64
		wantErr  bool
	}{
		{"plain", "42 (python3) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 3 4 20 0 1 0 5 6 7", 7, 40, false},
		{"name with spaces and parens", "9 (web (soc) ket) R 1 9 9 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 6 7", 1, 3, false},
		{"negative child times", "9 (x) R 1 9 9 0 -1 0 0 0 0 0 5 5 -1 -1 20 0 1 0 5 6 7", 1, 10, false},
		{"truncated", "9 (x) R 1 9", 0, 0, true},
		{"no name", "garbage", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (got.ppid != tt.wantPPID || got.cpu != tt.wantCPU) {
				t.Errorf("got ppid %d cpu %d, want %d %d", got.ppid, got.cpu, tt.wantPPID, tt.wantCPU)
			}
		})
	}
}

func TestSampleSelfAndTree(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	child := exec.Command(sleep, "5")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()

	self := procSampler{pids: []int{os.Getpid()}, root: "/proc"}
	s, err := self.sample()
	if err != nil {
		t.Fatal(err)
	}
	if s.procs != 1 || s.rssKiB <= 0 {
		t.Errorf("self sample %+v", s)
	}
	tree := procSampler{pids: []int{os.Getpid()}, tree: true, root: "/proc"}
	pids, err := tree.descendants()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, child.Process.Pid) || pids[0] != os.Getpid() {
		t.Errorf("descendants %v lack child %d", pids, child.Process.Pid)
	}
	ts, err := tree.sample()
	if err != nil {
		t.Fatal(err)
	}
	if ts.procs < 2 || ts.rssKiB <= s.rssKiB/2 {
		t.Errorf("tree sample %+v, self %+v", ts, s)
	}
	if _, err := (procSampler{pids: []int{1 << 30}, root: "/proc"}).sample(); err == nil {
		t.Error("a missing --pid must be an error")
	}
}
