/* Tables of pipeline "switch_only" (docs/switch-only-datapath.md, p4src/switch_only.p4): constants,
 * key and value structs, maps. Mirrored in system/switch/tables.py (SWITCH_ONLY), checked by
 * system/switch/tests/test_correspondence.py and test_switch_only_correspondence.py. Byte order per
 * field: "network" as on the wire, "host" the CPU's order. Every value starts with a u32 action code
 * (host order); tables with a direct counter have it in <table>_counter (DIRECT_COUNTER_MAP,
 * structs.h), keyed like the table. Pads are zero. syn_cookie and the SYN-ACK's constants: synack_tables.h (shared with
 * miresga). */
#ifndef MIRESGA_SWITCH_SWITCH_ONLY_TABLES_H
#define MIRESGA_SWITCH_SWITCH_ONLY_TABLES_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "structs.h"

/* Table sizes (p4src/include/miresga_sizes.p4 and switch_only_sizes.p4 have the same numbers).
 * conn_in/conn_out: the Tofino-1 figure (system/switch/profiles/tofino1.yaml) as the maximum; the
 * switch profile may allow fewer. */
#define VIP_TABLE_SIZE 64
#define BACKENDS_TABLE_SIZE 1024
#define CONN_IN_TABLE_SIZE 71680
#define CONN_OUT_TABLE_SIZE 71680
#define SLOW_PATH_TABLE_SIZE 1

/* Table ids (index into table_counters); TABLE_ROUTE (0) is in consts.h. */
#define TABLE_VIP 1
#define TABLE_BACKENDS 2
#define TABLE_CONN_IN 3
#define TABLE_CONN_OUT 4
#define TABLE_SYN_COOKIE 5
#define TABLE_SLOW_PATH 6
/* TABLE_PROTECTED_HOSTS 7, TABLE_TRUSTED_PORTS 8: guard_tables.h. */
#define SWITCH_ONLY_NUM_TABLES 9

/* Action codes. The MISS codes are the tables' const default actions: never in an entry. */
#define VIP_ACTION_MARK 1
#define VIP_ACTION_MISS 2
#define BACKENDS_ACTION_MARK 1
#define BACKENDS_ACTION_MISS 2
#define CONN_IN_ACTION_TO_BACKEND 1
#define CONN_IN_ACTION_MISS 2
#define CONN_OUT_ACTION_TO_CLIENT 1
#define CONN_OUT_ACTION_MISS 2
#define SLOW_PATH_ACTION_SET 1

/* vip: (dst IP, dst port) -> mark_vip(). 8-byte key, 4-byte value. */
struct vip_key {
	__be32 dst_addr;   /* network */
	__be16 dst_port;   /* network */
	__u16 pad;
};

struct vip_value {
	__u32 action;      /* host: VIP_ACTION_* */
};

/* backends: (src IP, src port) -> mark_backend(). 8 / 4 bytes. */
struct backends_key {
	__be32 src_addr;   /* network */
	__be16 src_port;   /* network */
	__u16 pad;
};

struct backends_value {
	__u32 action;      /* host: BACKENDS_ACTION_* */
};

/* conn_in: client -> VIP 4-tuple -> to_backend(backend_addr, backend_port, port, smac, dmac,
 * ack_delta). 12 / 32 bytes. */
struct conn_in_key {
	__be32 client_addr; /* network */
	__be32 vip_addr;    /* network */
	__be16 client_port; /* network */
	__be16 vip_port;    /* network */
};

struct conn_in_value {
	__u32 action;       /* host: CONN_IN_ACTION_* */
	__u32 port;         /* host: P4 egress port of the back-end */
	__be32 backend_addr; /* network: destination IP := this */
	__be16 backend_port; /* network: destination port := this */
	__u8 smac[6];       /* network */
	__u8 dmac[6];       /* network */
	__u16 pad;
	__u32 ack_delta;    /* host: ack += ack_delta (mod 2^32); delta = b - s */
};

/* conn_out: back-end -> client 4-tuple -> to_client(vip_addr, vip_port, seq_delta). 12 / 16 bytes. */
struct conn_out_key {
	__be32 backend_addr; /* network */
	__be32 client_addr;  /* network */
	__be16 backend_port; /* network */
	__be16 client_port;  /* network */
};

struct conn_out_value {
	__u32 action;       /* host: CONN_OUT_ACTION_* */
	__be32 vip_addr;    /* network: source IP := this */
	__be16 vip_port;    /* network: source port := this */
	__u16 pad;
	__u32 seq_delta;    /* host: seq += seq_delta (mod 2^32): the negated delta, as on Tofino */
};

/* slow_path: keyless; its default action set_slow_path(port). 8 bytes, key u32 0. */
struct slow_path_value {
	__u32 action;       /* host: SLOW_PATH_ACTION_SET (0 before the first write: port 0, dropped) */
	__u32 port;         /* host: the CPU port */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VIP_TABLE_SIZE);
	__type(key, struct vip_key);
	__type(value, struct vip_value);
} vip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BACKENDS_TABLE_SIZE);
	__type(key, struct backends_key);
	__type(value, struct backends_value);
} backends SEC(".maps");

/* Filled at run time by the slow path (through the control plane). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CONN_IN_TABLE_SIZE);
	__type(key, struct conn_in_key);
	__type(value, struct conn_in_value);
} conn_in SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CONN_OUT_TABLE_SIZE);
	__type(key, struct conn_out_key);
	__type(value, struct conn_out_value);
} conn_out SEC(".maps");

/* An array of one element: the emulated keyless table's default action. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOW_PATH_TABLE_SIZE);
	__type(key, __u32);
	__type(value, struct slow_path_value);
} slow_path SEC(".maps");

/* Direct counters (per-CPU, keyed like their tables; structs.h). */
DIRECT_COUNTER_MAP(vip_counter, struct vip_key, VIP_TABLE_SIZE);
DIRECT_COUNTER_MAP(backends_counter, struct backends_key, BACKENDS_TABLE_SIZE);
DIRECT_COUNTER_MAP(conn_in_counter, struct conn_in_key, CONN_IN_TABLE_SIZE);
DIRECT_COUNTER_MAP(conn_out_counter, struct conn_out_key, CONN_OUT_TABLE_SIZE);

/* syn_cookie (keyless: the cookie secret) and the SYN-ACK's constants, shared with miresga. */
#include "synack_tables.h"
/* protected_hosts and trusted_ports (the back-end guard), shared with miresga. */
#include "guard_tables.h"

#endif
