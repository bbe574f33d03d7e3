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
	for _, want := range []string{"--tcp address  [CHATBRIDGE_TCP]", `(default ":5000")`, "--http", "--echo", "--max-line", "--rate", "--burst", "--queue", "--write-timeout", "--max-clients", "--max-per-ip", "--shutdown-timeout", "--log-format", "CHATBRIDGE_MAX_PER_IP"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseConfigNATS(t *testing.T) {
	const secret = "sixteen bytes at least"
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantURL string
		wantErr string
	}{
		{"off by default", nil, nil, "", ""},
		{"from the environment", nil, map[string]string{"CHATBRIDGE_NATS": "nats://127.0.0.1:4222", "CHATBRIDGE_NATS_PREFIX": "chat-2", "CHATBRIDGE_CLUSTER_SECRET": secret}, "nats://127.0.0.1:4222", ""},
		{"insecure", []string{"--nats", "nats://127.0.0.1:4222", "--cluster-insecure"}, nil, "nats://127.0.0.1:4222", ""},
		{"several URLs, TLS, credentials", []string{"--nats", "tls://u:p@10.0.0.1:4222, tls://10.0.0.2:4222", "--nats-creds", "a.creds", "--nats-ca", "ca.pem", "--cluster-secret", secret}, nil, "tls://u:p@10.0.0.1:4222, tls://10.0.0.2:4222", ""},
		{"a prefix with a dot", []string{"--nats", "nats://127.0.0.1:4222", "--nats-prefix", "a.b", "--cluster-secret", secret}, nil, "", `--nats-prefix "a.b"`},
		{"required without a URL", []string{"--nats-required"}, nil, "", "--nats-required needs --nats"},
		{"no secret", []string{"--nats", "nats://127.0.0.1:4222"}, nil, "", "--nats needs --cluster-secret"},
		{"secret too short", []string{"--nats", "nats://127.0.0.1:4222", "--cluster-secret", "short"}, nil, "", "--cluster-secret must be at least 16 bytes"},
		{"secret and insecure", []string{"--nats", "nats://127.0.0.1:4222", "--cluster-secret", secret, "--cluster-insecure"}, nil, "", "do not go together"},
		{"secret without NATS", nil, map[string]string{"CHATBRIDGE_CLUSTER_SECRET": secret}, "", "--cluster-secret needs --nats"},
		{"insecure without NATS", []string{"--cluster-insecure"}, nil, "", "--cluster-insecure needs --nats"},
		{"credentials without NATS", []string{"--nats-creds", "a.creds"}, nil, "", "--nats-creds needs --nats"},
		{"CA without NATS", []string{"--nats-ca", "ca.pem"}, nil, "", "--nats-ca needs --nats"},
		{"a node ID", []string{"--nats", "nats://127.0.0.1:4222", "--cluster-insecure", "--nats-node", "node-a"}, nil, "nats://127.0.0.1:4222", ""},
		{"a node ID with a dot", []string{"--nats", "nats://127.0.0.1:4222", "--cluster-insecure", "--nats-node", "a.b"}, nil, "", `--nats-node "a.b": use letters`},
		{"a node ID too long", []string{"--nats", "nats://127.0.0.1:4222", "--cluster-insecure", "--nats-node", strings.Repeat("n", 65)}, nil, "", "at most 64"},
		{"a node ID without NATS", []string{"--nats-node", "a"}, nil, "", "--nats-node needs --nats"},
		{"not a NATS URL", []string{"--nats", "http://127.0.0.1:4222", "--cluster-insecure"}, nil, "", `--nats "http://127.0.0.1:4222": want nats://`},
		{"no host", []string{"--nats", "nats://", "--cluster-insecure"}, nil, "", `--nats "nats://"`},
		{"one bad URL of two", []string{"--nats", "nats://127.0.0.1:4222,127.0.0.1:4223", "--cluster-insecure"}, nil, "", `--nats "127.0.0.1:4223"`},
		{"a bad URL's password is not shown", []string{"--nats", "nats://u:hunter22@h:4222/x", "--cluster-insecure"}, nil, "", `--nats "nats://u:redacted@h:4222/x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env), &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter22") || strings.Contains(err.Error(), secret) {
					t.Fatalf("the error shows a secret: %v", err)
				}
				return
			}
			if err != nil || c.natsURL != tt.wantURL {
				t.Fatalf("natsURL = %q, %v; want %q", c.natsURL, err, tt.wantURL)
			}
		})
	}
	// --help lists the flags with their variables, and never a secret,
	// however it was given.
	var out bytes.Buffer
	parseConfig([]string{"--cluster-secret", secret, "--help"}, env(map[string]string{"CHATBRIDGE_CLUSTER_SECRET": secret}), &out)
	for _, want := range []string{"--nats URL  [CHATBRIDGE_NATS]", "--nats-required  [CHATBRIDGE_NATS_REQUIRED]", "--nats-prefix prefix  [CHATBRIDGE_NATS_PREFIX]", `(default "chatbridge")`,
		"--nats-creds file  [CHATBRIDGE_NATS_CREDS]", "--nats-node ID  [CHATBRIDGE_NATS_NODE]", "--nats-ca file  [CHATBRIDGE_NATS_CA]", "--cluster-secret secret  [CHATBRIDGE_CLUSTER_SECRET]", "--cluster-insecure  [CHATBRIDGE_CLUSTER_INSECURE]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), secret) {
		t.Errorf("--help shows the secret:\n%s", out.String())
	}
}
