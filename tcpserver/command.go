package tcpserver

import (
	"errors"
	"fmt"
	"strings"
)

// Limits on names.
const (
	MaxNickLen = 24
	MaxRoomLen = 32
)

// Errors from name checks; wrapped with the name that failed.
var (
	ErrBadNick = errors.New("use 1-24 letters, digits, - or _")
	ErrBadRoom = errors.New("use 1-32 letters, digits, - or _")
)

// ParseCommand splits a line that starts with "/" into its command, folded
// to lower case, and the rest of the line with surrounding spaces removed.
// ok is false for a line that is not a command; "//text" is not a command,
// it is the message "/text".
func ParseCommand(line string) (name, arg string, ok bool) {
	if len(line) < 2 || line[0] != '/' || line[1] == '/' {
		return "", "", false
	}
	rest := line[1:]
	name, arg, _ = strings.Cut(rest, " ")
	if name == "" {
		return "", "", false
	}
	return strings.ToLower(name), strings.TrimSpace(arg), true
}

// ValidNick reports whether s can be a member's name: 1 to 24 ASCII
// letters, digits, '-' or '_'. Names are unique without regard to case.
func ValidNick(s string) error {
	if !ValidName(s, MaxNickLen) {
		return fmt.Errorf("nick %q is not valid: %w", s, ErrBadNick)
	}
	return nil
}

// RoomName checks a room name (a leading '#' is allowed and dropped) and
// returns it folded to lower case: rooms "Dev" and "#dev" are the same room.
func RoomName(s string) (string, error) {
	s = strings.TrimPrefix(s, "#")
	if !ValidName(s, MaxRoomLen) {
		return "", fmt.Errorf("room %q is not valid: %w", s, ErrBadRoom)
	}
	return strings.ToLower(s), nil
}

// ValidName reports whether s has the shape of every name chatbridge
// uses (nicks, rooms, node IDs): 1 to max ASCII letters, digits, '-' or
// '_'.
func ValidName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// helpText is what /help answers, sent one line at a time.
const helpText = `Commands:
  /nick NAME       change your name (1-24 letters, digits, - or _)
  /who             who is in this room
  /me ACTION       say what you are doing: * you ACTION
  /join ROOM       go to another room (made on first join)
  /rooms           list rooms and how many are in each
  /msg NAME TEXT   send TEXT to NAME only
  /history [N]     show the N lines before the oldest you have seen (50, at most 200)
  /ignore NAME     stop seeing NAME's lines and private messages (/ignore alone lists)
  /unignore NAME   see them again
  /whois NAME      who NAME is, and since when
  /topic           the room's topic
  /register PASSWORD    make your name yours: nobody else may take it
  /nick NAME PASSWORD   take your registered name (or /identify NAME PASSWORD)
  /password OLD NEW     change its password; /unregister PASSWORD gives it up
  /op PASSWORD     become an operator, if you have the password
  /help            this list
  /quit            leave the chat
Anything else you type is said to the room; start a line with // to say one that begins with /.`
