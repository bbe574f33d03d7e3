package natsrelay

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// An Embedded is a NATS server inside this process, with JetStream file
// storage under a directory of its own: what --data runs, so that one node
// is a cluster of one and keeps its rooms' lines and its state through the
// same relay code as a cluster (see [Config.InProcess]). It listens on no
// port: the relay reaches it in memory, and nothing else can.
//
// What a crash loses: the server writes each line to its block file (the
// kernel's page cache) within a few milliseconds of getting it; kill -9
// loses only what it had not yet written. It asks the disk to sync every
// SyncInterval (default here 1 s), which bounds what a power cut loses.
type Embedded struct {
	srv      *server.Server
	problems atomic.Int64 // warnings and errors the server logged while starting
}

// EmbedConfig is where and how an Embedded keeps its data.
type EmbedConfig struct {
	Dir          string        // the data directory; JetStream keeps its files in Dir/jetstream
	SyncInterval time.Duration // how often the files are synced to disk; 1s
	MaxStore     int64         // JetStream's disk limit; 0: the server's default (most of the disk)
}

// StartEmbedded starts an embedded NATS server on cfg.Dir. A data
// directory it cannot read whole is reported in one log line (what the
// server found wrong, and that it starts with what it could read), not
// refused: the lines that survive are worth more than none.
func StartEmbedded(cfg EmbedConfig, log *slog.Logger) (*Embedded, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir == "" {
		return nil, errors.New("embedded NATS: no data directory")
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	e := &Embedded{}
	nlog := &natsLog{log: log.With("component", "nats"), e: e}
	opts := &server.Options{
		ServerName:        "chatbridge",
		DontListen:        true,
		JetStream:         true,
		StoreDir:          cfg.Dir,
		SyncInterval:      cfg.SyncInterval,
		JetStreamMaxStore: cfg.MaxStore,
		NoSigs:            true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS on %s: %w", cfg.Dir, err)
	}
	srv.SetLoggerV2(nlog, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		if p := nlog.first.Load(); p != nil {
			return nil, fmt.Errorf("embedded NATS on %s did not start: %s", cfg.Dir, *p)
		}
		return nil, fmt.Errorf("embedded NATS on %s did not start within 30s", cfg.Dir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS on %s: JetStream did not start (%s)", cfg.Dir, orNone(nlog.first.Load()))
	}
	e.srv = srv
	if n := e.problems.Load(); n > 0 {
		log.Warn("data directory not read whole; starting with what could be read",
			"dir", cfg.Dir, "problems", n, "first", orNone(nlog.first.Load()))
	}
	return e, nil
}

func orNone(p *string) string {
	if p == nil {
		return "none logged"
	}
	return *p
}

// Server is the server, for [Config.InProcess].
func (e *Embedded) Server() *server.Server { return e.srv }

// Problems returns how many warnings and errors the server has logged.
func (e *Embedded) Problems() int64 { return e.problems.Load() }

// Shutdown stops the server, after it has written what it holds.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// DataFile is path within dir, for what --data keeps besides JetStream.
func DataFile(dir, name string) string { return filepath.Join(dir, name) }

// natsLog is the embedded server's log: its warnings and errors go to
// the node's log at debug level (the first, and how many, are reported
// once, after the start), its notices nowhere.
type natsLog struct {
	log   *slog.Logger
	e     *Embedded
	first atomic.Pointer[string]
}

func (l *natsLog) problem(format string, v []any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	l.e.problems.Add(1)
	l.first.CompareAndSwap(nil, &msg)
	l.log.Debug(msg)
}

func (l *natsLog) Noticef(string, ...any)         {}
func (l *natsLog) Warnf(format string, v ...any)  { l.problem(format, v) }
func (l *natsLog) Fatalf(format string, v ...any) { l.problem(format, v) }
func (l *natsLog) Errorf(format string, v ...any) { l.problem(format, v) }
func (l *natsLog) Debugf(string, ...any)          {}
func (l *natsLog) Tracef(string, ...any)          {}
