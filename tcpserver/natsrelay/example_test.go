package natsrelay_test

import (
	"context"
	"log/slog"
	"os"

	"chatbridge/tcpserver"
	"chatbridge/tcpserver/natsrelay"
)

// A node joins the cluster: the relay is the hub's Relay, starts with the
// hub, and closes after the servers that feed the hub have shut down.
func ExampleNew() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	relay, err := natsrelay.New(natsrelay.Config{
		URL:    "nats://127.0.0.1:4222",
		Secret: []byte(os.Getenv("CHATBRIDGE_CLUSTER_SECRET")), // the same on every node
	}, log)
	if err != nil {
		log.Error("bad NATS config", "err", err)
		return
	}
	hub := tcpserver.NewHub(tcpserver.HubConfig{Relay: relay}, log)
	if err := relay.Start(context.Background(), hub); err != nil {
		log.Error("NATS", "err", err) // only with Config.Required
		return
	}
	defer relay.Close()

	srv := tcpserver.New(hub, tcpserver.Config{}, log)
	_ = srv // srv.Serve(ctx, listener), then srv.Shutdown(ctx)
}
