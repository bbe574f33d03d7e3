package tcpserver_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"

	"chatbridge/tcpserver"
)

// A hub, a TCP chat server on a loopback port, and one telnet-style client
// that takes a name and asks who is here.
func ExampleServer() {
	hub := tcpserver.NewHub(tcpserver.HubConfig{}, nil)
	srv := tcpserver.New(hub, tcpserver.Config{}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	r := bufio.NewReader(conn)
	r.ReadString('\n') // *** Welcome to chatbridge, guest-NNNN! ...
	r.ReadString('\n') // *** 1 in lobby: guest-NNNN
	fmt.Fprint(conn, "/nick alice\r\n/who\r\n")
	renamed, _ := r.ReadString('\n')
	who, _ := r.ReadString('\n')
	_, after, _ := strings.Cut(renamed, " is now ")
	fmt.Println("*** ... is now", strings.TrimSpace(after))
	fmt.Println(strings.TrimSpace(who))

	conn.Close()
	srv.Shutdown(context.Background())
	fmt.Println(<-done)
	// Output:
	// *** ... is now known as alice
	// *** 1 in lobby: alice
	// tcpserver: server closed
}
