package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"chatbridge/tcpserver"
	"chatbridge/tcpserver/natsrelay"
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
	if c.tcpAddr != ":5000" || c.httpAddr != ":8080" || c.echoAddr != "" || c.sshAddr != "" || c.maxLine != 4096 || c.history != 20 || c.queue != 1024 {
		t.Fatalf("defaults = %+v", c)
	}
	if c.connectRate != 10 || c.announceDelay != 5*time.Second || c.privateRate != 5 || c.privatePerIP != 2 {
		t.Fatalf("defaults = %+v", c)
	}
}

// The rate flags' bursts: ten times --connect-rate, four times the
// private rates, and at least one.
func TestBurstOf(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		times int
		want  int
	}{{10, 10, 100}, {5, 4, 20}, {2, 4, 8}, {0.01, 10, 1}, {0, 4, 1}, {0.25, 10, 3}} {
		if got := burstOf(tc.rate, tc.times); got != tc.want {
			t.Errorf("burstOf(%v, %d) = %d, want %d", tc.rate, tc.times, got, tc.want)
		}
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
		{[]string{"--ssh", ":2222"}, nil, "--ssh needs --ssh-host-key FILE"},
		{[]string{"--ssh-host-key", "key"}, nil, "--ssh-host-key needs --ssh"},
		{[]string{"--room", "the lobby"}, nil, `--room: room "the lobby" is not valid`},
		{nil, map[string]string{"CHATBRIDGE_ROOM": "lobby\u200b"}, `--room: room "lobby\u200b" is not valid`},
		{[]string{"--history-keep", "0"}, nil, "--history-keep 0: want 1 to 10000000"},
		{[]string{"--history-keep", "-5"}, nil, "--history-keep -5: want 1 to 10000000"},
		{[]string{"--history-keep", "10000001"}, nil, "--history-keep 10000001: want 1 to 10000000"},
		{[]string{"--history-keep", "many"}, nil, `invalid value "many" for flag -history-keep`},
		{[]string{"--history-age", "-1h"}, nil, "--history-age -1h0m0s: want 0 (no limit) or at least 1s"},
		{[]string{"--history-age", "10ms"}, nil, "--history-age 10ms: want 0 (no limit) or at least 1s"},
		{[]string{"--history-age", "30"}, nil, `invalid value "30" for flag -history-age`},
		{[]string{"--nats-replicas", "0"}, nil, "--nats-replicas 0: want 1 to 5"},
		{[]string{"--nats-replicas", "6", "--nats", "nats://127.0.0.1:4222", "--cluster-insecure"}, nil, "--nats-replicas 6: want 1 to 5"},
		{[]string{"--nats-replicas", "3", "--data", "d"}, nil, "--nats-replicas needs --nats"},
		{nil, map[string]string{"CHATBRIDGE_HISTORY_KEEP": "0"}, "--history-keep 0"},
		{nil, map[string]string{"CHATBRIDGE_SSH": ":2222"}, "--ssh needs --ssh-host-key FILE"},
		{[]string{"--connect-rate", "-1"}, nil, "--connect-rate -1: want a number from 0 (no limit) to 1000000"},
		{[]string{"--connect-rate", "NaN"}, nil, "--connect-rate NaN: want a number"},
		{[]string{"--connect-rate", "1e308"}, nil, "--connect-rate 1e+308: want a number"},
		{[]string{"--connect-rate", "Inf"}, nil, "--connect-rate +Inf: want a number"},
		{nil, map[string]string{"CHATBRIDGE_CONNECT_RATE": "lots"}, `CHATBRIDGE_CONNECT_RATE="lots"`},
		{[]string{"--private-rate", "-0.5"}, nil, "--private-rate -0.5: want a number"},
		{[]string{"--rate", "NaN"}, nil, "--rate NaN: want a number from 0 (no limit) to 1000000"},
		{nil, map[string]string{"CHATBRIDGE_RATE": "+Inf"}, "--rate +Inf: want a number"},
		{[]string{"--rate", "-1"}, nil, "--rate -1: want a number"},
		{[]string{"--private-rate-per-ip", "2000000"}, nil, "--private-rate-per-ip 2e+06: want a number"},
		{nil, map[string]string{"CHATBRIDGE_PRIVATE_RATE_PER_IP": "NaN"}, "--private-rate-per-ip NaN: want a number"},
		{[]string{"--announce-delay", "-1s"}, nil, "--announce-delay -1s: want 0 (at once) to 1h0m0s"},
		{[]string{"--announce-delay", "2h"}, nil, "--announce-delay 2h0m0s: want 0 (at once) to 1h0m0s"},
		{[]string{"--announce-delay", "5"}, nil, `invalid value "5" for flag -announce-delay`},
		{[]string{"--embed-origins", "https://docs.example.com; report-uri https://evil.example/x *"}, nil, `--embed-origins "https://docs.example.com;": want scheme://host[:port]`},
		{[]string{"--embed-origins", "'unsafe-inline'"}, nil, `--embed-origins "'unsafe-inline'"`},
		{nil, map[string]string{"CHATBRIDGE_EMBED_ORIGINS": "javascript:alert(1)"}, `--embed-origins "javascript:alert(1)"`},
		{[]string{"--embed-origins", ""}, nil, "--embed-origins empty"},
		{[]string{"--embed-origins", "*,https://docs.example.com"}, nil, "--embed-origins * stands alone"},
		{[]string{"--allow-host", "chat.example.com:8080"}, nil, `--allow-host "chat.example.com:8080": want a host name`},
		{[]string{"--allow-host", "http://chat.example.com"}, nil, `--allow-host "http://chat.example.com"`},
	}
	for _, tt := range tests {
		_, err := parseConfig(tt.args, env(tt.env), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseConfig(%q, %v) = %v, want %q", tt.args, tt.env, err, tt.want)
		}
	}
}

func TestParseConfigEmbedOriginsAndAllowHost(t *testing.T) {
	c, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	if err != nil || len(c.embedSources) != 1 || c.embedSources[0] != "*" || c.allowHostList != nil {
		t.Fatalf("defaults: %q %q %v", c.embedSources, c.allowHostList, err)
	}
	c, err = parseConfig([]string{"--embed-origins", "https://docs.example.com, *.example.org 'self'", "--allow-host", "Chat.Example.com,10.0.0.5"}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.embedSources, " ") != "https://docs.example.com *.example.org 'self'" || strings.Join(c.allowHostList, " ") != "chat.example.com 10.0.0.5" {
		t.Fatalf("got %q and %q", c.embedSources, c.allowHostList)
	}
}

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"--tcp address  [CHATBRIDGE_TCP]", `(default ":5000")`, "--http", "--echo", "--max-line", "--rate", "--burst", "--queue", "--write-timeout", "--max-clients", "--max-per-ip", "--shutdown-timeout", "--log-format", "CHATBRIDGE_MAX_PER_IP", "--metrics-addr address  [CHATBRIDGE_METRICS_ADDR]",
		"--ssh address  [CHATBRIDGE_SSH]", "--ssh-host-key file  [CHATBRIDGE_SSH_HOST_KEY]", "--connect-rate", "CHATBRIDGE_ANNOUNCE_DELAY", "--private-rate-per-ip"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
	// An empty or false default says nothing; the log level reads as the
	// flag takes it.
	for _, bad := range []string{`(default "")`, `(default "false")`, "INFO"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("--help says %q:\n%s", bad, out.String())
		}
	}
	if !strings.Contains(out.String(), `--log-level level  [CHATBRIDGE_LOG_LEVEL]`) || !strings.Contains(out.String(), `(default "info")`) {
		t.Errorf("--help does not show the log level's default as info:\n%s", out.String())
	}
}

func TestLogLevelFlag(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want slog.Level
	}{{"debug", slog.LevelDebug}, {"WARN", slog.LevelWarn}, {"error", slog.LevelError}} {
		c, err := parseConfig([]string{"--log-level", tt.in}, env(nil), &bytes.Buffer{})
		if err != nil || slog.Level(c.logLevel) != tt.want {
			t.Errorf("--log-level %s = %v, %v", tt.in, slog.Level(c.logLevel), err)
		}
	}
	if _, err := parseConfig(nil, env(map[string]string{"CHATBRIDGE_LOG_LEVEL": "loud"}), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `CHATBRIDGE_LOG_LEVEL="loud"`) {
		t.Errorf("a bad level = %v", err)
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

func TestParseConfigAddressesAndProxies(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		show    tcpserver.ShowAddrs
		proxies string // space-separated
		wantErr string
	}{
		{"defaults", nil, nil, tcpserver.ShowAddrsTCP, "", ""},
		{"flags", []string{"--show-addresses", "none", "--trusted-proxies", "127.0.0.1,::1, 10.0.0.0/8"}, nil, tcpserver.ShowAddrsNone, "127.0.0.1/32 ::1/128 10.0.0.0/8", ""},
		{"environment", nil, map[string]string{"CHATBRIDGE_SHOW_ADDRESSES": "all", "CHATBRIDGE_TRUSTED_PROXIES": "192.0.2.0/24"}, tcpserver.ShowAddrsAll, "192.0.2.0/24", ""},
		{"the flag wins", []string{"--trusted-proxies="}, map[string]string{"CHATBRIDGE_TRUSTED_PROXIES": "192.0.2.0/24"}, tcpserver.ShowAddrsTCP, "", ""},
		{"an unknown policy", []string{"--show-addresses", "ws"}, nil, 0, "", `--show-addresses "ws": want tcp, all or none`},
		{"an empty policy", nil, map[string]string{"CHATBRIDGE_SHOW_ADDRESSES": ""}, 0, "", `--show-addresses "": want tcp, all or none`},
		{"a host name", []string{"--trusted-proxies", "proxy.example.com"}, nil, 0, "", `--trusted-proxies "proxy.example.com": not an IP address or CIDR prefix`},
		{"a bad prefix", nil, map[string]string{"CHATBRIDGE_TRUSTED_PROXIES": "10.0.0.0/33"}, 0, "", `"10.0.0.0/33": not an IP address`},
		{"too many", []string{"--trusted-proxies", strings.Repeat("10.0.0.1,", 2000)}, nil, 0, "", "--trusted-proxies 2000 entries: at most 1024"},
		{"a huge value", nil, map[string]string{"CHATBRIDGE_SHOW_ADDRESSES": strings.Repeat("x", 1<<20)}, 0, "", `--show-addresses "xxxxxxxxxxxxxxxx...": want`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || len(err.Error()) > 200 {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			var got []string
			for _, p := range c.trustedProxies {
				got = append(got, p.String())
			}
			if err != nil || c.showAddresses != tt.show || strings.Join(got, " ") != tt.proxies {
				t.Fatalf("show %v, proxies %q, %v; want %v, %q", c.showAddresses, got, err, tt.show, tt.proxies)
			}
		})
	}
	var out bytes.Buffer
	parseConfig([]string{"--help"}, env(nil), &out)
	for _, want := range []string{"--show-addresses whose  [CHATBRIDGE_SHOW_ADDRESSES]", `(default "tcp")`, "--trusted-proxies IPs  [CHATBRIDGE_TRUSTED_PROXIES]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseConfigHistoryMemory(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int64
		wantErr string
	}{
		{"the default", nil, nil, 64 << 20, ""},
		{"plain bytes", []string{"--history-memory", "1000"}, nil, 1000, ""},
		{"KiB", []string{"--history-memory", "512KiB"}, nil, 512 << 10, ""},
		{"GiB", []string{"--history-memory=2GiB"}, nil, 2 << 30, ""},
		{"from the environment", nil, map[string]string{"CHATBRIDGE_HISTORY_MEMORY": "8MiB"}, 8 << 20, ""},
		{"zero", []string{"--history-memory", "0"}, nil, 0, "--history-memory must be at least 1 byte (--history 0 keeps no history)"},
		{"zero with a unit", []string{"--history-memory", "0MiB"}, nil, 0, "at least 1 byte"},
		{"negative", []string{"--history-memory", "-1"}, nil, 0, "want a number of bytes"},
		{"a decimal unit", []string{"--history-memory", "64MB"}, nil, 0, "want a number of bytes"},
		{"a fraction", []string{"--history-memory", "1.5MiB"}, nil, 0, "want a number of bytes"},
		{"a unit alone", []string{"--history-memory", "MiB"}, nil, 0, "want a number of bytes"},
		{"empty", []string{"--history-memory", ""}, nil, 0, "want a number of bytes"},
		{"spaces", []string{"--history-memory", " 64MiB"}, nil, 0, "want a number of bytes"},
		{"too many bytes", []string{"--history-memory", "9223372036854775808"}, nil, 0, "too many"},
		{"too many GiB", []string{"--history-memory", "8589934592GiB"}, nil, 0, "too many"},
		{"garbage in the environment", nil, map[string]string{"CHATBRIDGE_HISTORY_MEMORY": "lots"}, 0, `CHATBRIDGE_HISTORY_MEMORY="lots"`},
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
			if err != nil || int64(c.historyMemory) != tt.want {
				t.Fatalf("historyMemory = %d, %v; want %d", c.historyMemory, err, tt.want)
			}
		})
	}
	var out bytes.Buffer
	parseConfig([]string{"--help"}, env(nil), &out)
	if want := "--history-memory bytes  [CHATBRIDGE_HISTORY_MEMORY]"; !strings.Contains(out.String(), want) || !strings.Contains(out.String(), `(default "64MiB")`) {
		t.Errorf("--help lacks %q with its default 64MiB:\n%s", want, out.String())
	}
}

func TestParseConfigQueueBytes(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int64
		wantErr string
	}{
		{"the default", nil, nil, 1 << 20, ""},
		{"KiB", []string{"--queue-bytes", "256KiB"}, nil, 256 << 10, ""},
		{"no bound", []string{"--queue-bytes", "0"}, nil, 0, ""},
		{"from the environment", nil, map[string]string{"CHATBRIDGE_QUEUE_BYTES": "4MiB"}, 4 << 20, ""},
		{"16 lines", []string{"--queue-bytes", "16000", "--max-line", "1000"}, nil, 16000, ""},
		{"under 16 lines", []string{"--queue-bytes", "15999", "--max-line", "1000"}, nil, 0, "--queue-bytes must be 0 (no bound) or at least 16 lines of --max-line (16000 bytes)"},
		{"under 16 lines of the default", []string{"--queue-bytes", "32KiB"}, nil, 0, "(65536 bytes)"},
		{"one byte", []string{"--queue-bytes", "1"}, nil, 0, "at least 16 lines"},
		{"negative", []string{"--queue-bytes", "-1"}, nil, 0, "want a number of bytes"},
		{"a fraction", []string{"--queue-bytes", "0.5MiB"}, nil, 0, "want a number of bytes"},
		{"too many", []string{"--queue-bytes", "9223372036854775808"}, nil, 0, "too many"},
		{"garbage in the environment", nil, map[string]string{"CHATBRIDGE_QUEUE_BYTES": "1 MiB"}, 0, `CHATBRIDGE_QUEUE_BYTES="1 MiB"`},
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
			if err != nil || int64(c.queueBytes) != tt.want {
				t.Fatalf("queueBytes = %d, %v; want %d", c.queueBytes, err, tt.want)
			}
		})
	}
	var out bytes.Buffer
	parseConfig([]string{"--help"}, env(nil), &out)
	if want := "--queue-bytes bytes  [CHATBRIDGE_QUEUE_BYTES]"; !strings.Contains(out.String(), want) || !strings.Contains(out.String(), `(default "1MiB")`) {
		t.Errorf("--help lacks %q with its default 1MiB:\n%s", want, out.String())
	}
}

func TestParseConfigRoomBudget(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantRate  int
		wantBytes int64
		wantErr   string
	}{
		{"the defaults", nil, nil, tcpserver.DefaultRoomRate, tcpserver.DefaultRoomBytes, ""},
		{"given", []string{"--room-rate", "5000", "--room-bytes", "8MiB"}, nil, 5000, 8 << 20, ""},
		{"off", []string{"--room-rate", "0", "--room-bytes", "0"}, nil, 0, 0, ""},
		{"from the environment", nil, map[string]string{"CHATBRIDGE_ROOM_RATE": "1", "CHATBRIDGE_ROOM_BYTES": "1GiB"}, 1, 1 << 30, ""},
		{"a negative rate", []string{"--room-rate", "-1"}, nil, 0, 0, "--room-rate must not be negative"},
		{"a rate that is not a number", []string{"--room-rate", "NaN"}, nil, 0, 0, `invalid value "NaN" for flag -room-rate`},
		{"a fraction", []string{"--room-rate", "0.5"}, nil, 0, 0, `invalid value "0.5"`},
		{"too many deliveries", []string{"--room-rate", "99999999999999999999"}, nil, 0, 0, "value out of range"},
		{"negative bytes", []string{"--room-bytes", "-5"}, nil, 0, 0, "want a number of bytes"},
		{"bytes per second written out", []string{"--room-bytes", "64MiB/s"}, nil, 0, 0, "want a number of bytes"},
		{"garbage in the environment", nil, map[string]string{"CHATBRIDGE_ROOM_BYTES": "lots"}, 0, 0, `CHATBRIDGE_ROOM_BYTES="lots"`},
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
			if err != nil || c.roomRate != tt.wantRate || int64(c.roomBytes) != tt.wantBytes {
				t.Fatalf("room budget = %d deliveries, %d bytes, %v; want %d, %d", c.roomRate, c.roomBytes, err, tt.wantRate, tt.wantBytes)
			}
		})
	}
	var out bytes.Buffer
	parseConfig([]string{"--help"}, env(nil), &out)
	for _, want := range []string{"--room-rate deliveries  [CHATBRIDGE_ROOM_RATE]", "--room-bytes bytes  [CHATBRIDGE_ROOM_BYTES]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// TestOpPassword: --op-password comes from the flag or the environment,
// must be long enough, and is never shown: not by --help, however it was
// given, nor in the error about its length.
func TestOpPassword(t *testing.T) {
	const pass = "correct-horse-battery"
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantErr string
	}{
		{"none", nil, nil, "", ""},
		{"flag", []string{"--op-password", pass}, nil, pass, ""},
		{"environment", nil, map[string]string{"CHATBRIDGE_OP_PASSWORD": pass}, pass, ""},
		{"too short", []string{"--op-password", "hunter2"}, nil, "", "--op-password must be at least 12 bytes (it is 7)"},
		{"too short from the environment", nil, map[string]string{"CHATBRIDGE_OP_PASSWORD": "hunter2"}, "", "--op-password must be at least 12 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil || c.opPassword != tt.want {
				t.Fatalf("opPassword = %q, %v; want %q", c.opPassword, err, tt.want)
			}
		})
	}
	for _, args := range [][]string{{"--op-password", pass, "--help"}, {"--help"}, {"--op-password=" + pass, "--nope"}} {
		var out bytes.Buffer
		parseConfig(args, env(map[string]string{"CHATBRIDGE_OP_PASSWORD": pass}), &out)
		if !strings.Contains(out.String(), "--op-password secret  [CHATBRIDGE_OP_PASSWORD]") {
			t.Errorf("%q: the usage lacks --op-password:\n%s", args, out.String())
		}
		if strings.Contains(out.String(), pass) {
			t.Errorf("%q: the usage shows the password:\n%s", args, out.String())
		}
	}
}

// TestAuthSecretAndSpeak: --auth-secret comes from the flag or the
// environment, must be long enough, and is never shown, by --help or in
// the error about its length; --speak takes anyone, registered or
// verified, and nothing else.
func TestAuthSecretAndSpeak(t *testing.T) {
	const secret = "the-docs-site-and-chat-share-this-secret"
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		speak   tcpserver.Speak
		wantErr string
	}{
		{"none", nil, nil, "", tcpserver.SpeakAnyone, ""},
		{"flag", []string{"--auth-secret", secret, "--speak", "verified"}, nil, secret, tcpserver.SpeakVerified, ""},
		{"environment", nil, map[string]string{"CHATBRIDGE_AUTH_SECRET": secret, "CHATBRIDGE_SPEAK": "registered"}, secret, tcpserver.SpeakRegistered, ""},
		{"too short", []string{"--auth-secret", "hunter2-hunter2"}, nil, "", 0, "--auth-secret must be at least 32 bytes (it is 15)"},
		{"too short from the environment", nil, map[string]string{"CHATBRIDGE_AUTH_SECRET": "hunter2-hunter2"}, "", 0, "--auth-secret must be at least 32 bytes"},
		{"bad speak", []string{"--speak", "everyone"}, nil, "", 0, `--speak "everyone": want anyone, registered or verified`},
		{"empty speak", []string{"--speak", ""}, nil, "", 0, `--speak "": want`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil || c.authSecret != tt.want || c.speak != tt.speak {
				t.Fatalf("authSecret = %q, speak %v, %v; want %q, %v", c.authSecret, c.speak, err, tt.want, tt.speak)
			}
		})
	}
	for _, args := range [][]string{{"--auth-secret", secret, "--help"}, {"--help"}, {"--auth-secret=" + secret, "--nope"}} {
		var out bytes.Buffer
		parseConfig(args, env(map[string]string{"CHATBRIDGE_AUTH_SECRET": secret}), &out)
		if !strings.Contains(out.String(), "--auth-secret secret  [CHATBRIDGE_AUTH_SECRET]") {
			t.Errorf("%q: the usage lacks --auth-secret:\n%s", args, out.String())
		}
		if strings.Contains(out.String(), secret) {
			t.Errorf("%q: the usage shows the secret:\n%s", args, out.String())
		}
	}
}

// TestDataGivesTheSSHHostKeyAPlace: with --data, --ssh needs no
// --ssh-host-key: the key is kept in the data directory.
func TestDataGivesTheSSHHostKeyAPlace(t *testing.T) {
	c, err := parseConfig([]string{"--ssh", ":2222", "--data", "/srv/chat"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.sshHostKey != "/srv/chat/ssh_host_key" {
		t.Fatalf("host key %q", c.sshHostKey)
	}
	c, err = parseConfig([]string{"--ssh", ":2222", "--data", "/srv/chat", "--ssh-host-key", "/etc/k"}, env(nil), io.Discard)
	if err != nil || c.sshHostKey != "/etc/k" {
		t.Fatalf("host key %q, %v", c.sshHostKey, err)
	}
}

// TestDataNodeID: --data keeps the node's ID from its first start on,
// and refuses a file that holds no ID rather than making a new one.
func TestDataNodeID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := dataNodeID(dir)
	if err != nil || !tcpserver.ValidName(first, natsrelay.MaxNodeID) {
		t.Fatalf("first start: %q, %v", first, err)
	}
	again, err := dataNodeID(dir)
	if err != nil || again != first {
		t.Fatalf("second start: %q, %v, want %q", again, err, first)
	}
	for _, bad := range []string{"", "no spaces here", "a.b", strings.Repeat("x", natsrelay.MaxNodeID+1)} {
		if err := os.WriteFile(filepath.Join(dir, "node-id"), []byte(bad+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if id, err := dataNodeID(dir); err == nil {
			t.Errorf("node-id %q taken as %q", bad, id)
		}
	}
}

// TestParseConfigRoomFolded: --room is the name /join gives the same
// room, folded as RoomName folds it; "Lobby" made a default room no
// /join could reach (/join Lobby made another, "lobby").
func TestParseConfigRoomFolded(t *testing.T) {
	for _, give := range []string{"Lobby", "#lobby", "#LOBBY"} {
		c, err := parseConfig([]string{"--room", give}, env(nil), &bytes.Buffer{})
		if err != nil {
			t.Fatalf("--room %q: %v", give, err)
		}
		if c.defaultRoom != "lobby" {
			t.Errorf("--room %q: default room %q, want %q", give, c.defaultRoom, "lobby")
		}
	}
}

// The size flags have an upper bound as well as a lower one: a line of
// megabytes, a queue of millions or a collector turned off by a negative
// --gc-percent (Go reads any negative as off) is a misconfiguration that
// can run the process out of memory, refused with the bound named.
func TestParseConfigSizeBounds(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(c config) bool
		wantErr string
	}{
		{"the defaults", nil, nil, func(c config) bool { return c.maxLine == 4096 && c.queue == 1024 && c.gcPercent == 50 }, ""},
		{"the longest line", []string{"--max-line", "65536"}, nil, func(c config) bool { return c.maxLine == 65536 }, ""},
		{"a line too long", []string{"--max-line", "65537"}, nil, nil, "--max-line 65537: want 1 to 65536"},
		{"a line of megabytes", []string{"--max-line", "8388608", "--queue-bytes", "0"}, nil, nil, "--max-line 8388608: want 1 to 65536"},
		{"a line too long, from the environment", nil, map[string]string{"CHATBRIDGE_MAX_LINE": "1000000"}, nil, "--max-line 1000000: want 1 to 65536"},
		{"no line", []string{"--max-line", "-1"}, nil, nil, "--max-line must be at least 1"},
		{"the longest queue", []string{"--queue", "65536"}, nil, func(c config) bool { return c.queue == 65536 }, ""},
		{"a queue too long", []string{"--queue", "65537"}, nil, nil, "--queue 65537: want 1 to 65536"},
		{"a queue of millions", nil, map[string]string{"CHATBRIDGE_QUEUE": "5000000"}, nil, "--queue 5000000: want 1 to 65536"},
		{"no queue", []string{"--queue", "0"}, nil, nil, "--queue must be at least 1"},
		{"gc at 1 percent", []string{"--gc-percent", "1"}, nil, func(c config) bool { return c.gcPercent == 1 && c.gcPercentSet }, ""},
		{"gc at the most", []string{"--gc-percent", "10000"}, nil, func(c config) bool { return c.gcPercent == 10000 }, ""},
		{"gc off", []string{"--gc-percent", "-1"}, nil, nil, "--gc-percent -1: want 1 to 10000 (to turn the collector off, leave this flag and set GOGC=off)"},
		{"gc off otherwise", []string{"--gc-percent", "-50"}, nil, nil, "--gc-percent -50: want 1 to 10000"},
		{"gc off from the environment", nil, map[string]string{"CHATBRIDGE_GC_PERCENT": "-1"}, nil, "--gc-percent -1: want 1 to 10000"},
		{"gc without end", []string{"--gc-percent", "0"}, nil, nil, "--gc-percent 0: want 1 to 10000"},
		{"gc as good as off", []string{"--gc-percent", "10001"}, nil, nil, "--gc-percent 10001: want 1 to 10000"},
		{"gc spelled off", []string{"--gc-percent", "off"}, nil, nil, `invalid value "off" for flag -gc-percent`},
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
			if err != nil || !tt.check(c) {
				t.Fatalf("max-line %d, queue %d, gc-percent %d, err %v", c.maxLine, c.queue, c.gcPercent, err)
			}
		})
	}
}
