package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// result is what a fanout or hold run reports. The JSON names are a stable
// interface for scripts. Figures that need --pid are null without it.
type result struct {
	Mode             string   `json:"mode"`
	Clients          int      `json:"clients"`
	Receivers        int      `json:"receivers"`
	Senders          int      `json:"senders"`
	Sent             int64    `json:"sent"`
	Deliveries       int64    `json:"deliveries"`
	DeliveriesPerSec float64  `json:"deliveries_per_sec"`
	LatP50us         float64  `json:"lat_p50_us"`
	LatP90us         float64  `json:"lat_p90_us"`
	LatP99us         float64  `json:"lat_p99_us"`
	LatP999us        float64  `json:"lat_p999_us"`
	LatMaxus         float64  `json:"lat_max_us"`
	ComplP50us       float64  `json:"completion_p50_us"`
	ComplP99us       float64  `json:"completion_p99_us"`
	ComplMaxus       float64  `json:"completion_max_us"`
	Lost             int64    `json:"lost"`
	Refused          int64    `json:"refused,omitempty"`     // lines no receiver got, when the server may refuse them
	ErrorLines       int64    `json:"error_lines,omitempty"` // error lines the senders got meanwhile
	Duplicated       int64    `json:"duplicated"`
	Reordered        int64    `json:"reordered"`
	Disconnected     int      `json:"disconnected"`
	ConnectErrors    int      `json:"connect_errors"`
	Held             int      `json:"held"`
	ConnectPerSec    float64  `json:"connect_per_sec"`
	ServerCPUs       *float64 `json:"server_cpu_s"`
	DeliveriesPerCPU *float64 `json:"deliveries_per_cpu_s"`
	// The load tool's own CPU over the same window, and deliveries per
	// CPU-second of server and load tool together: the kernel charges
	// some of a delivery's work to whichever side's call happens to
	// push it (with Nagle's algorithm, the receiver's acknowledgement),
	// and the sum does not depend on that.
	ToolCPUs              *float64 `json:"tool_cpu_s,omitempty"`
	DeliveriesPerTotalCPU *float64 `json:"deliveries_per_total_cpu_s,omitempty"`
	RSSBeforeKiB          *int64   `json:"rss_before_kib"`
	RSSAfterKiB           *int64   `json:"rss_after_kib"`
	KiBPerConn            *float64 `json:"kib_per_conn"`
	DurationS             float64  `json:"duration_s"`
}

func microseconds(ns int64) float64 { return float64(ns) / 1e3 }

// setTool fills the load tool's own CPU figures, from two samples of
// itself taken with the server's; setServer comes first.
func (r *result) setTool(before, after procSample) {
	cpu := cpuSeconds(before, after)
	r.ToolCPUs = &cpu
	if r.ServerCPUs != nil && *r.ServerCPUs+cpu > 0 {
		per := float64(r.Deliveries) / (*r.ServerCPUs + cpu)
		r.DeliveriesPerTotalCPU = &per
	}
}

// setServer fills the --pid figures from two samples taken around the
// measured window.
func (r *result) setServer(before, after procSample) {
	cpu := cpuSeconds(before, after)
	r.ServerCPUs = &cpu
	rb, ra := before.rssKiB, after.rssKiB
	r.RSSBeforeKiB, r.RSSAfterKiB = &rb, &ra
	if r.Mode == "fanout" && cpu > 0 {
		per := float64(r.Deliveries) / cpu
		r.DeliveriesPerCPU = &per
	}
	if r.Mode == "hold" && r.Held > 0 {
		per := float64(ra-rb) / float64(r.Held)
		r.KiBPerConn = &per
	}
}

// writeJSON prints v as one line of JSON: every report's --json form.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// write prints r as one JSON object or one human line.
func (r *result) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSON(w, r)
	}
	_, err := fmt.Fprintln(w, r.summary())
	return err
}

func (r *result) summary() string {
	var b strings.Builder
	switch r.Mode {
	case "fanout":
		fmt.Fprintf(&b, "fanout: %d receivers, %d senders, sent %d, deliveries %d (%.0f/s) in %.2fs",
			r.Receivers, r.Senders, r.Sent, r.Deliveries, r.DeliveriesPerSec, r.DurationS)
		fmt.Fprintf(&b, "; latency p50 %s p90 %s p99 %s p99.9 %s max %s",
			us(r.LatP50us), us(r.LatP90us), us(r.LatP99us), us(r.LatP999us), us(r.LatMaxus))
		fmt.Fprintf(&b, "; completion p50 %s p99 %s max %s",
			us(r.ComplP50us), us(r.ComplP99us), us(r.ComplMaxus))
		fmt.Fprintf(&b, "; lost %d dup %d reordered %d disconnected %d connect errors %d",
			r.Lost, r.Duplicated, r.Reordered, r.Disconnected, r.ConnectErrors)
	case "hold":
		fmt.Fprintf(&b, "hold: %d/%d held, %d connect errors, %d disconnected, %.0f conns/s",
			r.Held, r.Clients, r.ConnectErrors, r.Disconnected, r.ConnectPerSec)
	}
	if r.ServerCPUs != nil {
		fmt.Fprintf(&b, "; server cpu %.2fs", *r.ServerCPUs)
		if r.DeliveriesPerCPU != nil {
			fmt.Fprintf(&b, " (%.0f deliveries/cpu-s)", *r.DeliveriesPerCPU)
		}
		if r.ToolCPUs != nil {
			fmt.Fprintf(&b, "; load tool cpu %.2fs", *r.ToolCPUs)
			if r.DeliveriesPerTotalCPU != nil {
				fmt.Fprintf(&b, " (%.0f deliveries per cpu-s of both)", *r.DeliveriesPerTotalCPU)
			}
		}
		fmt.Fprintf(&b, ", rss %d -> %d KiB", *r.RSSBeforeKiB, *r.RSSAfterKiB)
		if r.KiBPerConn != nil {
			fmt.Fprintf(&b, " (%.2f KiB/conn)", *r.KiBPerConn)
		}
	}
	return b.String()
}

// us prints a microsecond figure with a sensible unit.
func us(v float64) string {
	return time.Duration(v * 1e3).Round(time.Microsecond).String()
}
