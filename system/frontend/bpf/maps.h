/* Maps of the front-end fast path (opened by system/frontend/fastpath.py by these names). */
#ifndef MIRESGA_FE_MAPS_H
#define MIRESGA_FE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"

/* flows: client endpoint -> back-end and fast-path flags. Written by user space on establishment,
 * deleted on close; LRU so that a leak cannot fill it. The program updates last_ns only. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FLOW_TABLE_SIZE);
	__type(key, struct endpoint);
	__type(value, struct flow_value);
} flows SEC(".maps");

/* backends: back-end endpoint -> its index; marks back-end->client traffic. User space fills it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BACKEND_TABLE_SIZE);
	__type(key, struct endpoint);
	__type(value, __u32);
} backends SEC(".maps");

/* fe_config: VIP and punt device (key 0). Written by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fe_config);
} fe_config SEC(".maps");

/* fe_counters: packets and bytes per verdict reason (R_*), per CPU. Program only. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NUM_REASONS);
	__type(key, __u32);
	__type(value, struct fe_counter);
} fe_counters SEC(".maps");

#endif
