package sshdoor

import (
	"testing"

	"chatbridge/tcpserver"
)

// The door shares the hub's commands: /history (Tab completes it) shows
// the lines before those replayed, with their times.
func TestHistoryOnTheDoor(t *testing.T) {
	td := startDoor(t, tcpserver.HubConfig{History: 1, Rate: -1}, Config{})
	bob := dialTelnet(t, td.tcpAddr)
	bob.say("/nick bob")
	bob.expect("is now known as bob")
	bob.say("first")
	bob.say("second")
	bob.say("/nick bobby")
	bob.expect("is now known as bobby")
	alice := dialSSH(t, td.sshAddr, "alice", sshOpts{term: "xterm"})
	alice.expect("<bob> second")
	alice.expect("[lobby] alice> ")
	alice.typ("/hist\t")
	alice.expect("/history ")
	alice.typ("5\r")
	alice.expect("] <bob> first")
	alice.expect("end of history: 1 earlier line")
	alice.typ("/history\r")
	alice.expect("no earlier lines")
}
