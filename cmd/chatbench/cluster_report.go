package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// writeTables prints the report as Markdown tables, as the README shows them.
func (r *clusterReport) writeTables(w io.Writer) {
	fmt.Fprintf(w, "Measured %s: %d nodes x %d members", time.Now().UTC().Format("2006-01-02"), r.Nodes, r.MembersPerNode)
	if r.Spares > 0 {
		fmt.Fprintf(w, " + %d spare node(s) with none", r.Spares)
	}
	fmt.Fprintf(w, ", --max-clients %d on each, %d load processes, %d NATS server(s)", r.MaxClients, r.LoadProcs, r.NATSServers)
	if r.Replicas > 0 {
		fmt.Fprintf(w, ", --nats-replicas %d", r.Replicas)
	}
	fmt.Fprintf(w, "; load average %s at the start.\n", r.LoadAvg)
	if r.Note != "" {
		fmt.Fprintf(w, "(%s)\n", r.Note)
	}
	writeHold(w, "Hold: the cluster", &r.Cluster.Hold, r.Nodes)
	if r.Single != nil {
		writeHold(w, "Hold: one node alone", &r.Single.Hold, 1)
	}
	fmt.Fprintf(w, "\n**One room at %g line(s) a second**\n\n", r.Rate)
	fmt.Fprintln(w, "| | members | lines | deliveries | deliveries/s | p50 | p99 | p99.9 | max | lost | dup | reordered | cut off as slow |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	label := fmt.Sprintf("%d nodes", r.Nodes)
	if r.Spares > 0 {
		label += fmt.Sprintf(" + %d spare", r.Spares)
	}
	writeChatRow(w, label, &r.Cluster.Chat)
	if r.Single != nil {
		writeChatRow(w, "one node", &r.Single.Chat)
	}
	fmt.Fprintln(w, "\n**CPU over the same windows**")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| | process | CPU s | share of a core | deliveries | µs per delivery |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	writeCPU(w, label, &r.Cluster.Chat, r.Nodes)
	if r.Single != nil {
		writeCPU(w, "one node", &r.Single.Chat, 1)
		if c, s := meanUs(&r.Cluster.Chat, r.Nodes), meanUs(&r.Single.Chat, 1); c > 0 && s > 0 {
			fmt.Fprintf(w, "\nA node of the cluster spent %.2f µs per delivery, the node alone %.2f µs: %.2fx.\n", c, s, c/s)
		}
	}
	if k := r.Kill; k != nil {
		fmt.Fprintf(w, "\n**Node %d killed (SIGKILL) with %s members, the others chatting on**\n\n", k.Node, num(int64(k.Members)))
		fmt.Fprintln(w, "| node | its members forgotten | all forgotten after | /rooms right again after | /rooms showed then | members there | connections refused | cut off as slow |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
		for i, f := range k.Forgot {
			if i == k.Node {
				continue
			}
			forgot, clean := "not within the wait", "not within the wait"
			if k.ForgotS[i] > 0 {
				forgot = fmt.Sprintf("%.1f s", k.ForgotS[i])
			}
			if k.PresenceS[i] > 0 {
				clean = fmt.Sprintf("%.1f s", k.PresenceS[i])
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", nodeName(i, r.Nodes), num(int64(f)), forgot, clean, num(k.Shown[i]), num(k.Expected[i]),
				num(k.Counters[i].Rejected), num(k.Counters[i].SlowCut))
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| cut off | back in | chatting again | chatting again after, p50 / max | refused as full | other refusals, failures | lost, dup, reordered (back, once back) | stayed | lines | lost, dup, reordered (stayed) | p50 | p99 |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
		fmt.Fprintf(w, "| %s | %s | %s | %.1f s / %.1f s | %s | %s | %s, %s, %s | %s | %s | %s, %s, %s | %s | %s |\n",
			num(int64(k.Cut)), num(int64(k.Rejoined)), num(int64(k.Back)), k.BackP50S, k.BackMaxS,
			num(int64(k.RefusedFull)), num(int64(k.RetryErrors)),
			num(k.RejoinLost), num(k.RejoinDup), num(k.RejoinReord), num(int64(k.Stayed)), num(k.Lines),
			num(k.Lost), num(k.Duplicated), num(k.Reordered), ms(k.P50us), ms(k.P99us))
		if k.FirstRetryErr != "" {
			fmt.Fprintf(w, "\n(the first other refusal or failure: %s)\n", k.FirstRetryErr)
		}
		if k.TimedOut {
			fmt.Fprintf(w, "\n(the wait ended before every member was back and every survivor had forgotten the killed node's members)\n")
		}
		var cpu []string
		for i, c := range k.NodeCPU {
			if i != k.Node {
				cpu = append(cpu, fmt.Sprintf("%s %.1f s", nodeName(i, r.Nodes), c))
			}
		}
		fmt.Fprintf(w, "\nCPU over the %.0f s after the kill: %s, NATS %.1f s, load tool %.1f s.\n", k.DurationS, strings.Join(cpu, ", "), k.NATSCPU, k.LoadCPU)
	}
}

// nodeName is node i of a run whose first holders hold members: the
// others are spares.
func nodeName(i, holders int) string {
	if i >= holders {
		return fmt.Sprintf("node %d (spare)", i)
	}
	return fmt.Sprintf("node %d", i)
}

func writeHold(w io.Writer, title string, h *holdReport, holders int) {
	fmt.Fprintf(w, "\n**%s**: %s of %s members in, %s connect errors, %.0f connects/s (%.1f s); %s still there after the settle.\n\n",
		title, num(int64(h.Connected)), num(int64(h.Members)), num(int64(h.ConnectErrors)), h.ConnectPerSec, h.ConnectS, num(int64(h.Held)))
	fmt.Fprintln(w, "| process | members | RSS before → after (KiB) | KiB per member | /rooms shows | others' members forgotten as lost |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for i := range h.NodeMembers {
		per := "" // a spare holds its sender alone: its RSS is the node's, not a member's
		if i < holders {
			per = fmt.Sprintf("%.2f", h.KiBPerMember[i])
		}
		fmt.Fprintf(w, "| %s | %s | %s → %s | %s | %s | %s |\n", nodeName(i, holders), num(int64(h.NodeMembers[i])),
			num(h.NodeRSSBefore[i]), num(h.NodeRSSAfter[i]), per, num(h.RoomShown[i]), num(int64(h.Forgot[i])))
	}
	for i, rss := range h.NATSRSS {
		fmt.Fprintf(w, "| nats-server %d | | %s | | | |\n", i, num(rss))
	}
	fmt.Fprintf(w, "| load tool | | %s | | | |\n", num(h.LoadRSS))
}

func writeChatRow(w io.Writer, label string, p *phaseReport) {
	lost := num(p.Lost)
	if !p.Drained {
		lost += " (not all in by the end of --drain)"
	}
	fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label,
		num(int64(p.Receivers)), num(p.Lines), num(p.Deliveries), num(int64(p.DeliveriesPerSec)),
		ms(p.P50us), ms(p.P99us), ms(p.P999us), ms(p.Maxus), lost, num(p.Duplicated), num(p.Reordered), num(p.SlowCut))
}

func writeCPU(w io.Writer, label string, p *phaseReport, holders int) {
	secs := p.DurationS
	for i, c := range p.NodeCPU {
		fmt.Fprintf(w, "| %s | %s | %.1f | %.0f%% | %s | %.2f |\n", label, nodeName(i, holders), c, 100*c/secs, num(p.NodeDeliveries[i]), p.NodeUsPerDeliv[i])
	}
	if p.NATS {
		fmt.Fprintf(w, "| %s | NATS | %.1f | %.0f%% | | |\n", label, p.NATSCPU, 100*p.NATSCPU/secs)
	}
	fmt.Fprintf(w, "| %s | load tool | %.1f | %.0f%% | | |\n", label, p.LoadCPU, 100*p.LoadCPU/secs)
}

// meanUs is the CPU per delivery over the nodes that hold members (a
// spare's is in the CPU table).
func meanUs(p *phaseReport, holders int) float64 {
	var cpu float64
	var d int64
	for i, c := range p.NodeCPU[:min(holders, len(p.NodeCPU))] {
		cpu += c
		d += p.NodeDeliveries[i]
	}
	if d == 0 {
		return 0
	}
	return cpu * 1e6 / float64(d)
}

func ms(us float64) string {
	if us >= 1e6 {
		return fmt.Sprintf("%.2f s", us/1e6)
	}
	return fmt.Sprintf("%.1f ms", us/1e3)
}

// num writes n with thousands separators.
func num(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
