// Command chatbench is the load tool for chatbridge. It measures chat
// servers on this machine's loopback, ours and peers alike, so that they can
// be compared per server CPU-second and per connection.
//
//	chatbench fanout  --tcp 127.0.0.1:5000 --receivers 200 --senders 1 --rate 200 --duration 5s --pid 1234
//	chatbench hold    --ws ws://127.0.0.1:8080/ws -n 5000 --pid 1234
//	chatbench ceiling --listen 127.0.0.1:5001
//	chatbench cluster --nodes 5 --members 19000
//
// cluster starts NATS, the nodes and the load processes itself, and
// measures one room held by them all (README, "Running several nodes").
//
// Every line a sender writes is a tag, "bench <sender> <seq> <send-time-ns>".
// Receivers look for tags anywhere in what they read, because servers add
// prefixes, wrap lines in JSON and join several lines in one read or frame.
// Per receiver and sender the sequence numbers give loss, duplicates and
// reordering; the send time gives latency on the shared clock, and the
// last receiver of each line gives broadcast completion.
//
// ceiling is the reference server: the least a Go broadcaster can do per
// delivery, so that "deliveries per server CPU-second" of a real server has
// something to be held against. With --pid, fanout also reports its own CPU
// time and deliveries per CPU-second of server and load tool together, which
// does not depend on which of the two the kernel charges a send to.
//
// chatbench refuses every address outside 127.0.0.0/8 and ::1, and every run
// ends by itself (--timeout).
package main
