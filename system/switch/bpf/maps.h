/* Maps shared by every pipeline of the emulated switch. Names are the P4 table names where a map
 * mirrors a table; the Python mirror (system/switch/tables.py) opens them by these names. */
#ifndef MIRESGA_SWITCH_MAPS_H
#define MIRESGA_SWITCH_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"

/* route (P4 table route): LPM on the IPv4 destination -> forward(port, smac, dmac) or drop.
 * Filled by the control plane. LPM tries must not be preallocated. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, ROUTE_TABLE_SIZE);
	__type(key, struct route_key);
	__type(value, struct route_value);
} route SEC(".maps");

/* route_counter: route's direct counter, keyed by the entry's LPM key (prefix length, prefix). */
DIRECT_COUNTER_MAP(route_counter, struct route_key, ROUTE_TABLE_SIZE);

/* ports: P4 port number -> ifindex of its interface. Filled by the loader (target.py). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PORTS + 1);
	__type(key, __u32);
	__type(value, struct port_info);
} ports SEC(".maps");

/* ifindex_port: ifindex -> P4 port number, the reverse of ports. Filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS + 1);
	__type(key, __u32);
	__type(value, __u32);
} ifindex_port SEC(".maps");

/* port_counters: rx/tx/drop counters per P4 port, per CPU. Written by the data plane only. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_PORTS + 1);
	__type(key, __u32);
	__type(value, struct port_counters);
} port_counters SEC(".maps");

/* table_counters: hit/miss counters per table id (TABLE_*), per CPU. Data plane only. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NUM_TABLES);
	__type(key, __u32);
	__type(value, struct table_counters);
} table_counters SEC(".maps");

/* drop_counters: packets and bytes dropped per reason (DROP_*), per CPU. Data plane only. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NUM_DROP_REASONS);
	__type(key, __u32);
	__type(value, struct drop_counters);
} drop_counters SEC(".maps");

#endif
