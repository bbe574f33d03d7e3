package sshdoor

import (
	"strings"

	"chatbridge/tcpserver"
)

// commands are what Tab completes after a "/" at the start of a line: the
// hub's commands (see /help) and the door's own.
var commands = []string{"colors", "help", "history", "ignore", "join", "me", "msg", "names", "nick", "quit", "rooms", "unignore", "who"}

// maxListed is the most candidates a Tab that cannot choose lists.
const maxListed = 20

// complete is the editor's completion callback (see keys, which calls it
// for Tab only): the word before the cursor becomes the command or the
// name of someone in the room it starts, or as much of it as they share;
// when that adds nothing, the candidates are listed. A name completed at
// the start of a line gets ": ", as in IRC. It runs in the reader
// goroutine.
func (ss *session) complete(line string, pos int, key rune) (string, int, bool) {
	if key != '\t' {
		return "", 0, false
	}
	start := strings.LastIndexByte(line[:pos], ' ') + 1
	word := line[start:pos]
	var cands []string
	command := start == 0 && strings.HasPrefix(word, "/")
	switch {
	case command:
		for _, c := range commands {
			if hasPrefixFold("/"+c, word) {
				cands = append(cands, "/"+c)
			}
		}
	case word != "" && !strings.HasPrefix(word, "/"):
		for _, n := range ss.client.RoomNames() {
			if hasPrefixFold(n, word) {
				cands = append(cands, n)
			}
		}
	}
	var with string
	switch len(cands) {
	case 0:
		return line, pos, true // the Tab is swallowed: it would say nothing
	case 1:
		with = cands[0] + " "
		if start == 0 && !command {
			with = cands[0] + ": "
		}
	default:
		with = commonPrefixFold(cands)
		if len(with) <= len(word) {
			listed := cands[:min(len(cands), maxListed)]
			more := ""
			if len(cands) > maxListed {
				more = ", ..."
			}
			ss.Send(tcpserver.Notice(tcpserver.KindSystem, strings.Join(listed, ", ")+more))
			return line, pos, true
		}
	}
	return line[:start] + with + line[pos:], start + len(with), true
}

// hasPrefixFold reports whether s starts with prefix, ASCII case folded
// (names and commands are ASCII).
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// commonPrefixFold is the longest prefix all of list share, case folded,
// as the first has it.
func commonPrefixFold(list []string) string {
	p := list[0]
	for _, s := range list[1:] {
		n := 0
		for n < len(p) && n < len(s) && lower(p[n]) == lower(s[n]) {
			n++
		}
		p = p[:n]
	}
	return p
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Bounds on the editor's input history (Up and Down): the editor's own
// keeps 100 lines of up to 16 KiB each, 1.6 MiB a member at worst.
const (
	historyLines = 50
	historyBytes = 16 << 10
)

// history is the member's input history, as the editor asks for it (see
// term.History): at most historyLines lines and historyBytes bytes, the
// oldest going first; none until the first line is typed. A line typed
// twice in a row is kept once.
type history struct {
	lines []string // oldest first
	bytes int
}

func (h *history) Add(line string) {
	if line == "" || len(line) > historyBytes || len(h.lines) > 0 && h.lines[len(h.lines)-1] == line {
		return
	}
	h.lines = append(h.lines, line)
	h.bytes += len(line)
	drop := 0
	for len(h.lines)-drop > historyLines || h.bytes > historyBytes {
		h.bytes -= len(h.lines[drop])
		drop++
	}
	if drop > 0 {
		h.lines = append(h.lines[:0], h.lines[drop:]...)
		clear(h.lines[len(h.lines):cap(h.lines)])
	}
}

func (h *history) Len() int { return len(h.lines) }

// At returns the line typed idx lines ago (0: the last); it panics out
// of range, as term.History says.
func (h *history) At(idx int) string { return h.lines[len(h.lines)-1-idx] }
