/* Counter updates. Per-CPU maps: plain adds are race free. */
#ifndef MIRESGA_SWITCH_COUNTERS_H
#define MIRESGA_SWITCH_COUNTERS_H

#include "maps.h"

static __always_inline void count_rx(__u32 port, __u32 pkts, __u32 bytes)
{
	struct port_counters *c = bpf_map_lookup_elem(&port_counters, &port);

	if (c) {
		c->rx_packets += pkts;
		c->rx_bytes += bytes;
	}
}

static __always_inline void count_tx(__u32 port, __u32 pkts, __u32 bytes)
{
	struct port_counters *c = bpf_map_lookup_elem(&port_counters, &port);

	if (c) {
		c->tx_packets += pkts;
		c->tx_bytes += bytes;
	}
}

static __always_inline void count_drop(__u32 in_port, __u32 reason, __u32 pkts, __u32 bytes)
{
	struct port_counters *c = bpf_map_lookup_elem(&port_counters, &in_port);
	struct drop_counters *d = bpf_map_lookup_elem(&drop_counters, &reason);

	if (c)
		c->drops += pkts;
	if (d) {
		d->packets += pkts;
		d->bytes += bytes;
	}
}

static __always_inline void count_table(__u32 table, int hit, __u32 pkts, __u32 bytes)
{
	struct table_counters *t = bpf_map_lookup_elem(&table_counters, &table);

	if (!t)
		return;
	if (hit) {
		t->hit_packets += pkts;
		t->hit_bytes += bytes;
	} else {
		t->miss_packets += pkts;
		t->miss_bytes += bytes;
	}
}

#endif
