package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.tcpAddr != ":5000" || c.httpAddr != ":8080" || c.echoAddr != "" || c.maxLine != 4096 || c.history != 20 || c.queue != 1024 {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestParseConfigFlagsBeatEnvironment(t *testing.T) {
	c, err := parseConfig(
		[]string{"--tcp", "127.0.0.1:6000", "--rate=0", "--write-timeout", "3s"},
		env(map[string]string{"CHATBRIDGE_TCP": ":7000", "CHATBRIDGE_MAX_LINE": "100", "CHATBRIDGE_HTTP": "", "CHATBRIDGE_ECHO": ":8888"}),
		&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.tcpAddr != "127.0.0.1:6000" || c.httpAddr != "" || c.maxLine != 100 || c.rate != 0 || c.writeTimeout != 3*time.Second || c.echoAddr != ":8888" {
		t.Fatalf("config = %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--max-line", "0"}, nil, "--max-line must be at least 1"},
		{[]string{"--log-format", "xml"}, nil, `--log-format "xml": want text or json`},
		{nil, map[string]string{"CHATBRIDGE_RATE": "fast"}, `CHATBRIDGE_RATE="fast"`},
		{[]string{"--nope"}, nil, "flag provided but not defined: -nope"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
		{[]string{"--tcp", ""}, nil, "--tcp must not be empty"},
		{[]string{"--metrics-addr", "9100"}, nil, `--metrics-addr "9100": address 9100: missing port in address`},
		{[]string{"--metrics-addr", "127.0.0.1:"}, nil, `--metrics-addr "127.0.0.1:": port "": want a number from 1 to 65535`},
		{[]string{"--metrics-addr", "127.0.0.1:0"}, nil, `--metrics-addr "127.0.0.1:0": port "0": want a number`},
		{[]string{"--metrics-addr", "localhost:http"}, nil, `--metrics-addr "localhost:http": port "http": want a number`},
		{[]string{"--metrics-addr", "[::1:9100"}, nil, `--metrics-addr "[::1:9100": address [::1:9100: missing ']' in address`},
		{nil, map[string]string{"CHATBRIDGE_METRICS_ADDR": "127.0.0.1:70000"}, `--metrics-addr "127.0.0.1:70000": port "70000"`},
	}
	for _, tt := range tests {
		_, err := parseConfig(tt.args, env(tt.env), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseConfig(%q, %v) = %v, want %q", tt.args, tt.env, err, tt.want)
		}
	}
}

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"--tcp address  [CHATBRIDGE_TCP]", `(default ":5000")`, "--http", "--echo", "--max-line", "--rate", "--burst", "--queue", "--write-timeout", "--max-clients", "--max-per-ip", "--shutdown-timeout", "--log-format", "CHATBRIDGE_MAX_PER_IP", "--metrics-addr address  [CHATBRIDGE_METRICS_ADDR]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseConfigNATS(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantURL string
		wantErr string
	}{
		{"off by default", nil, nil, "", ""},
		{"from the environment", nil, map[string]string{"CHATBRIDGE_NATS": "nats://127.0.0.1:4222", "CHATBRIDGE_NATS_PREFIX": "chat-2"}, "nats://127.0.0.1:4222", ""},
		{"a prefix with a dot", []string{"--nats", "nats://127.0.0.1:4222", "--nats-prefix", "a.b"}, nil, "", `--nats-prefix "a.b"`},
		{"required without a URL", []string{"--nats-required"}, nil, "", "--nats-required needs --nats"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env), &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.natsURL != tt.wantURL {
				t.Fatalf("natsURL = %q, %v; want %q", c.natsURL, err, tt.wantURL)
			}
		})
	}
	var out bytes.Buffer
	parseConfig([]string{"--help"}, env(nil), &out)
	for _, want := range []string{"--nats URL  [CHATBRIDGE_NATS]", "--nats-required  [CHATBRIDGE_NATS_REQUIRED]", "--nats-prefix prefix  [CHATBRIDGE_NATS_PREFIX]", `(default "chatbridge")`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}
