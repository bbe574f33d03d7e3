package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat. It is 100
// on every Linux architecture Go supports; reading it properly needs
// sysconf(_SC_CLK_TCK), which needs cgo.
const clockTicks = 100

// procSampler reads the CPU time and resident memory of the server
// processes under test from /proc.
type procSampler struct {
	pids []int
	tree bool   // also count every descendant (websockify forks per connection)
	root string // "/proc"; tests may point elsewhere
}

// procSample is one reading, summed over the processes.
type procSample struct {
	cpuTicks uint64 // utime+stime+cutime+cstime
	rssKiB   int64  // VmRSS
	procs    int
}

func (p procSampler) enabled() bool { return len(p.pids) > 0 }

// sample reads every process once. The CPU figure includes cutime and
// cstime, the time of children that ended and were waited for, so a
// process per connection that came and went is still counted, and summing
// over the live tree counts nobody twice.
func (p procSampler) sample() (procSample, error) {
	pids := p.pids
	if p.tree {
		var err error
		if pids, err = p.descendants(); err != nil {
			return procSample{}, err
		}
	}
	var s procSample
	for i, pid := range pids {
		st, err := p.readStat(pid)
		if err != nil {
			if i >= len(p.pids) && errors.Is(err, os.ErrNotExist) {
				continue // a descendant that ended since the listing
			}
			return procSample{}, err
		}
		rss, err := p.readRSS(pid)
		if err != nil && !(i >= len(p.pids) && errors.Is(err, os.ErrNotExist)) {
			return procSample{}, err
		}
		s.cpuTicks += st.cpu
		s.rssKiB += rss
		s.procs++
	}
	return s, nil
}

type statLine struct {
	ppid int
	cpu  uint64
}

// readStat parses /proc/PID/stat. The command name, in parentheses, may hold
// spaces and parentheses itself, so fields are counted from the last ')'.
func (p procSampler) readStat(pid int) (statLine, error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return statLine{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return parseStat(b)
}

func parseStat(b []byte) (statLine, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return statLine{}, fmt.Errorf("parse stat: no ')' in %q", b)
	}
	// After ')': state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return statLine{}, fmt.Errorf("parse stat: %d fields after the name", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return statLine{}, fmt.Errorf("parse stat ppid: %w", err)
	}
	var cpu uint64
	for _, s := range f[11:15] {
		v, err := strconv.ParseInt(s, 10, 64) // cutime/cstime are signed in the kernel
		if err != nil {
			return statLine{}, fmt.Errorf("parse stat times: %w", err)
		}
		cpu += uint64(max(v, 0))
	}
	return statLine{ppid: ppid, cpu: cpu}, nil
}

// readRSS returns VmRSS in KiB (0 for a zombie, which has none).
func (p procSampler) readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 1 {
			break
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse VmRSS of pid %d: %w", pid, err)
		}
		return v, nil
	}
	return 0, nil
}

// descendants lists the given pids followed by all their descendants, found
// by walking parent links in /proc/*/stat.
func (p procSampler) descendants() ([]int, error) {
	entries, err := os.ReadDir(p.root)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	children := make(map[int][]int)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := p.readStat(pid)
		if err != nil {
			continue // gone since the listing, or unreadable
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := append([]int(nil), p.pids...)
	seen := make(map[int]bool, len(out))
	for _, pid := range out {
		seen[pid] = true
	}
	for i := 0; i < len(out); i++ { // out grows as children are found; pids are unique, so this ends
		for _, c := range children[out[i]] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// cpuSeconds converts a tick difference.
func cpuSeconds(before, after procSample) float64 {
	if after.cpuTicks < before.cpuTicks {
		return 0
	}
	return float64(after.cpuTicks-before.cpuTicks) / clockTicks
}
