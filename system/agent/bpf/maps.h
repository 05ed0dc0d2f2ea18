/* Maps of the back-end agent; the Python mirror (system/agent/tables.py) opens them by name. */
#ifndef MIRESGA_AGENT_MAPS_H
#define MIRESGA_AGENT_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"

/* flows: client endpoint -> s, delta and close state. Written by both hooks; LRU so that entries
 * of connections that never closed cleanly cannot fill it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AGENT_FLOWS_SIZE);
	__type(key, struct flow_key);
	__type(value, struct flow_state);
} flows SEC(".maps");

/* counters: one struct agent_counters per CPU (key 0). Written by the hooks only. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct agent_counters);
} counters SEC(".maps");

#endif
