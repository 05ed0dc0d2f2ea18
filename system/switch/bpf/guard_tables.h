/* The back-end guard's tables, shared by pipelines miresga and switch_only (guard.h applies them;
 * p4src/include/miresga_control.p4 and switch_only_control.p4 declare them; docs/miresga-datapath.md
 * "The guard"). Mirrored in system/switch/tables.py (PROTECTED_HOSTS, TRUSTED_PORTS and their
 * switch_only twins). Include from a pipeline's tables header, after structs.h. */
#ifndef MIRESGA_SWITCH_GUARD_TABLES_H
#define MIRESGA_SWITCH_GUARD_TABLES_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "structs.h"

/* Table sizes (p4src/include/miresga_sizes.p4 has the same numbers). */
#define PROTECTED_HOSTS_TABLE_SIZE 1024
#define TRUSTED_PORTS_TABLE_SIZE 128

/* Table ids (index into table_counters): the same in both pipelines (each has 7 tables before). */
#define TABLE_PROTECTED_HOSTS 7
#define TABLE_TRUSTED_PORTS 8

/* Action codes. The *_MISS codes are the tables' const default actions: never in an entry. */
#define PROTECTED_HOSTS_ACTION_MARK 1
#define PROTECTED_HOSTS_ACTION_MISS 2
#define TRUSTED_PORTS_ACTION_MARK 1
#define TRUSTED_PORTS_ACTION_MISS 2

/* protected_hosts: IPv4 destination (a back-end's data address) -> mark_protected(). 4 / 4 bytes. */
struct protected_hosts_key {
	__be32 dst_addr;   /* network */
};

struct protected_hosts_value {
	__u32 action;      /* host: PROTECTED_HOSTS_ACTION_* */
};

/* trusted_ports: ingress port (a front-end's, a back-end's, the CPU port) -> mark_trusted(). 4 / 4. */
struct trusted_ports_key {
	__u32 port;        /* host: P4 ingress port */
};

struct trusted_ports_value {
	__u32 action;      /* host: TRUSTED_PORTS_ACTION_* */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PROTECTED_HOSTS_TABLE_SIZE);
	__type(key, struct protected_hosts_key);
	__type(value, struct protected_hosts_value);
} protected_hosts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TRUSTED_PORTS_TABLE_SIZE);
	__type(key, struct trusted_ports_key);
	__type(value, struct trusted_ports_value);
} trusted_ports SEC(".maps");

DIRECT_COUNTER_MAP(protected_hosts_counter, struct protected_hosts_key, PROTECTED_HOSTS_TABLE_SIZE);
DIRECT_COUNTER_MAP(trusted_ports_counter, struct trusted_ports_key, TRUSTED_PORTS_TABLE_SIZE);

#endif
