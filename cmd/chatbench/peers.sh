#!/usr/bin/env bash
# peers.sh: measure chatbridge beside its peers in one run, on loopback, and
# print the figures as Markdown tables (the README's "Performance" section).
#
#   bash cmd/chatbench/peers.sh            # the full run, a few minutes
#   QUICK=1 bash cmd/chatbench/peers.sh    # small and short, to see it work
#
# Peers: the seed's select() chat server (its Python 3 port, seed_chat.py),
# websockify in front of it, the gorilla/websocket chat example (built here
# in a temporary directory from the module cache, never committed), and
# `chatbench ceiling`, the thinnest Go broadcaster: the machine's reference.
# A peer that cannot be had here is left out of the tables, with a note.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
peers_dir=${PEERS_DIR:-$repo/../shared/peers}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if [[ -n "${QUICK:-}" ]]; then
	N1=50 N2=100 HOLD_TCP=500 HOLD_WS=200 DUR=2s WSN=20 N5=200 MIXED=600
else
	N1=500 N2=1000 HOLD_TCP=10000 HOLD_WS=5000 DUR=5s WSN=100 N5=5000 MIXED=19900
fi

say() { echo "peers: $*" >&2; }
go build -o "$work/chatbridge" ./cmd/chatbridge
go build -o "$work/chatbench" ./cmd/chatbench
bench="$work/chatbench"

# wait_port HOST:PORT waits until something accepts there.
wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	say "nothing listens on $1"
	return 1
}

# start NAME ADDR CMD...: start a server in the background and remember it.
declare -A pid_of
start() {
	local name=$1 addr=$2
	shift 2
	"$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
	pid_of[$name]=$!
	wait_port "$addr"
}
# stop NAME: SIGTERM, and SIGKILL if it has not exited 5 s later (websockify
# has been seen to catch a SIGTERM and go on running).
stop() {
	local pid=${pid_of[$1]}
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

results="$work/results.jsonl"
: >"$results"
# run LABEL PEER SUBCOMMAND ARGS...: one chatbench run, its JSON kept.
run() {
	local label=$1 peer=$2
	shift 2
	say "$label: $peer"
	local out
	if out=$("$bench" "$@" --json --quiet); then
		printf '{"label":"%s","peer":"%s","r":%s}\n' "$label" "$peer" "$out" >>"$results"
	else
		say "$label: $peer failed: $out"
	fi
}

ours="--rate 0 --max-per-ip 0 --max-clients 0 --connect-rate 0 --room-rate 0 --room-bytes 0 --log-level warn"

# --- TCP -------------------------------------------------------------------
tcp_peers=()
if command -v python3 >/dev/null && [[ -f "$peers_dir/seed_chat.py" ]]; then
	tcp_peers+=(seed)
else
	say "seed_chat.py or python3 not found: the seed is left out"
fi
tcp_peers+=(ceiling chatbridge)
start_tcp() {
	case $1 in
	seed) start seed 127.0.0.1:7101 python3 "$peers_dir/seed_chat.py" 7101 127.0.0.1 ;;
	ceiling) start ceiling 127.0.0.1:7102 "$bench" ceiling --listen 127.0.0.1:7102 --quiet ;;
	chatbridge) start chatbridge 127.0.0.1:7103 "$work/chatbridge" --tcp 127.0.0.1:7103 --http 127.0.0.1:7104 $ours ;;
	esac
}
declare -A tcp_addr=([seed]=127.0.0.1:7101 [ceiling]=127.0.0.1:7102 [chatbridge]=127.0.0.1:7103)

for p in "${tcp_peers[@]}"; do
	start_tcp "$p"
	a=${tcp_addr[$p]} pid=${pid_of[$p]}
	run "TCP paced, N=$N1, 200 lines/s" "$p" fanout --tcp "$a" --receivers "$N1" --rate 200 --duration "$DUR" --pid "$pid"
	run "TCP paced, N=$N2, 200 lines/s" "$p" fanout --tcp "$a" --receivers "$N2" --rate 200 --duration "$DUR" --pid "$pid"
	run "TCP flat out, N=$N1" "$p" fanout --tcp "$a" --receivers "$N1" --rate 0 --duration "$DUR" --pid "$pid"
	stop "$p"
	# Memory per idle connection, each in a fresh process.
	start_tcp "$p"
	n=$HOLD_TCP
	[[ $p == seed ]] && n=$((HOLD_TCP < 1000 ? HOLD_TCP : 1000)) # select() stops near 1,018
	procs=1
	((n > 5000)) && procs=2
	run "TCP hold" "$p" hold --tcp "${tcp_addr[$p]}" -n "$n" --procs "$procs" --hold 3s --pid "${pid_of[$p]}"
	stop "$p"
done

# --- WebSocket -------------------------------------------------------------
# chatbridge twice: its plain protocol (a frame per line, as websockify-style
# clients want) and the JSON one the page speaks (what is queued for a
# client goes as one frame, an array of events).
ws_peers=(chatbridge chatbridge-json)
declare -A ws_url=([chatbridge]=ws://127.0.0.1:7104/ws [chatbridge-json]=ws://127.0.0.1:7104/ws [gorilla]=ws://127.0.0.1:7105/ws [websockify]=ws://127.0.0.1:7106/)
declare -A ws_flags=([chatbridge]="" [chatbridge-json]="--ws-json --ws-subprotocol chatbridge.v1.json" [gorilla]="" [websockify]="--ws-binary --ws-subprotocol binary --pid-tree")

gorilla_bin=""
if gdir=$(go mod download -json github.com/gorilla/websocket@v1.5.3 2>/dev/null | sed -n 's/.*"Dir": "\(.*\)",/\1/p') && [[ -d "$gdir/examples/chat" ]]; then
	mkdir -p "$work/gorilla"
	cp "$gdir"/examples/chat/*.go "$gdir"/examples/chat/*.html "$work/gorilla/"
	(cd "$work/gorilla" && chmod u+w ./* && go mod init gorillachat >/dev/null 2>&1 &&
		go mod edit -require github.com/gorilla/websocket@v1.5.3 && go mod download github.com/gorilla/websocket &&
		GOFLAGS=-mod=mod go build -o gorilla-chat . >/dev/null 2>&1) && gorilla_bin="$work/gorilla/gorilla-chat"
fi
if [[ -n "$gorilla_bin" ]]; then ws_peers+=(gorilla); else say "gorilla chat example could not be built: left out"; fi
if command -v websockify >/dev/null && [[ " ${tcp_peers[*]} " == *" seed "* ]]; then ws_peers+=(websockify); else say "websockify not found: left out"; fi

start_ws() {
	case $1 in
	chatbridge | chatbridge-json) start "$1" 127.0.0.1:7104 "$work/chatbridge" --tcp 127.0.0.1:7103 --http 127.0.0.1:7104 $ours ;;
	gorilla) start gorilla 127.0.0.1:7105 "$gorilla_bin" -addr 127.0.0.1:7105 ;;
	websockify)
		start seed 127.0.0.1:7101 python3 "$peers_dir/seed_chat.py" 7101 127.0.0.1
		start websockify 127.0.0.1:7106 websockify 127.0.0.1:7106 127.0.0.1:7101
		;;
	esac
}
stop_ws() {
	[[ $1 == websockify ]] && stop seed
	stop "$1"
}

for p in "${ws_peers[@]}"; do
	if ! start_ws "$p"; then
		say "$p did not start: left out"
		continue
	fi
	n1=$N1 n2=$N2
	[[ $p == websockify ]] && n1=$WSN n2=$WSN # a process per connection
	# shellcheck disable=SC2086
	run "WS paced, N=$n1, 200 lines/s" "$p" fanout --ws "${ws_url[$p]}" ${ws_flags[$p]} --receivers "$n1" --rate 200 --duration "$DUR" --pid "${pid_of[$p]}"
	# shellcheck disable=SC2086
	run "WS flat out, N=$n1" "$p" fanout --ws "${ws_url[$p]}" ${ws_flags[$p]} --receivers "$n1" --rate 0 --duration "$DUR" --pid "${pid_of[$p]}"
	if [[ $p != websockify ]]; then
		# shellcheck disable=SC2086
		run "WS chat pace, N=$N5, 20 lines/s" "$p" fanout --ws "${ws_url[$p]}" ${ws_flags[$p]} --receivers "$N5" --rate 20 --duration "$DUR" --pid "${pid_of[$p]}"
	fi
	if [[ $p == chatbridge* ]]; then
		# The same runs as websockify's, at its N, to compare like with like.
		# shellcheck disable=SC2086
		run "WS paced, N=$WSN, 200 lines/s" "$p" fanout --ws "${ws_url[$p]}" ${ws_flags[$p]} --receivers "$WSN" --rate 200 --duration "$DUR" --pid "${pid_of[$p]}"
		# shellcheck disable=SC2086
		run "WS flat out, N=$WSN" "$p" fanout --ws "${ws_url[$p]}" ${ws_flags[$p]} --receivers "$WSN" --rate 0 --duration "$DUR" --pid "${pid_of[$p]}"
	fi
	stop_ws "$p"
	if [[ $p != websockify ]] && start_ws "$p"; then
		# shellcheck disable=SC2086
		run "WS hold" "$p" hold --ws "${ws_url[$p]}" ${ws_flags[$p]} -n "$HOLD_WS" --hold 3s --pid "${pid_of[$p]}"
		stop_ws "$p"
	fi
done

# --- Many connections at once, TCP and WebSocket mixed -----------------------
# One process holding MIXED clients, half on each transport, from several
# client processes and 127.0.0.x source addresses.
start chatbridge 127.0.0.1:7104 "$work/chatbridge" --tcp 127.0.0.1:7103 --http 127.0.0.1:7104 $ours
run "TCP+WS mixed hold" chatbridge hold --tcp 127.0.0.1:7103 --ws ws://127.0.0.1:7104/ws -n "$MIXED" --procs 4 --per-source 5000 --hold 3s --pid "${pid_of[chatbridge]}"
stop chatbridge

# --- The tables ------------------------------------------------------------
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), Go $(go env GOVERSION)."
python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def f(v, d=0):
    return "n/a" if v is None else f"{v:,.{d}f}"
labels = []
for r in rows:
    if r["label"] not in labels:
        labels.append(r["label"])
for label in labels:
    print(f"\n**{label}**\n")
    rs = [r for r in rows if r["label"] == label]
    if rs[0]["r"]["mode"] == "hold":
        print("| server | held | connects/s | RSS before → after (KiB) | KiB per connection |")
        print("|---|---|---|---|---|")
        for r in rs:
            x = r["r"]
            print(f"| {r['peer']} | {x['held']:,} | {f(x['connect_per_sec'])} | {f(x['rss_before_kib'])} → {f(x['rss_after_kib'])} | {f(x['kib_per_conn'], 2)} |")
        continue
    ref = next((r["r"].get("deliveries_per_cpu_s") for r in rs if r["peer"] == "ceiling"), None)
    print("| server | receivers | deliveries/s | per server CPU-s | vs ceiling | per CPU-s, server + load tool | p50 | p99 | p99.9 | lost | dup | reordered |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rs:
        x = r["r"]
        ratio = "" if not ref or x.get("deliveries_per_cpu_s") is None else f"{x['deliveries_per_cpu_s']/ref:.2f}x"
        ms = lambda us: "n/a" if us is None else f"{us/1000:.1f} ms"
        print(f"| {r['peer']} | {x['receivers']:,} | {f(x['deliveries_per_sec'])} | {f(x.get('deliveries_per_cpu_s'))} | {ratio} | {f(x.get('deliveries_per_total_cpu_s'))} | {ms(x['lat_p50_us'])} | {ms(x['lat_p99_us'])} | {ms(x['lat_p999_us'])} | {x['lost']:,} | {x['duplicated']:,} | {x['reordered']:,} |")
EOF
