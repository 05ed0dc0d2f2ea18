/* Tables of pipeline "miresga" (docs/miresga-datapath.md, p4src/miresga.p4): constants, key and
 * value structs, maps. Mirrored in system/switch/tables.py (MIRESGA), checked by
 * system/switch/tests/test_correspondence.py. Byte order per field: "network" as on the wire,
 * "host" the CPU's order. Every value starts with a u32 action code (host order); values of
 * tables with a direct counter have it in <table>_counter (DIRECT_COUNTER_MAP, structs.h), keyed like
 * the table. Pads are zero. */
#ifndef MIRESGA_SWITCH_MIRESGA_TABLES_H
#define MIRESGA_SWITCH_MIRESGA_TABLES_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "structs.h"

/* Table sizes (p4src/include/miresga_sizes.p4 has the same numbers). */
#define VIP_TABLE_SIZE 64
#define BACKENDS_TABLE_SIZE 1024
#define FRONTEND_BUCKET_TABLE_SIZE 256
#define OFFLOAD_TABLE_SIZE 143360
#define BACKEND_BY_INDEX_TABLE_SIZE 1024
/* SYN_COOKIE_TABLE_SIZE, the syn_cookie map and the SYN-ACK constants: synack_tables.h. */

/* N of the bucket hash: CRC32(client_ip | client_port) mod N (a power of two: mod = mask). */
#define FRONTEND_BUCKETS 256

/* Table ids (index into table_counters); TABLE_ROUTE (0) is in consts.h. */
#define TABLE_VIP 1
#define TABLE_BACKENDS 2
#define TABLE_FRONTEND_BUCKET 3
#define TABLE_OFFLOAD 4
#define TABLE_BACKEND_BY_INDEX 5
#define TABLE_SYN_COOKIE 6
/* TABLE_PROTECTED_HOSTS 7, TABLE_TRUSTED_PORTS 8: guard_tables.h. */
#define MIRESGA_NUM_TABLES 9

/* Action codes. The *_MISS codes are the tables' const default actions: never in an entry. */
#define VIP_ACTION_MARK 1
#define VIP_ACTION_MISS 2
#define BACKENDS_ACTION_MARK 1
#define BACKENDS_ACTION_MISS 2
#define FRONTEND_BUCKET_ACTION_TO_FRONTEND 1
#define FRONTEND_BUCKET_ACTION_DROP 2
#define OFFLOAD_ACTION_TO_BACKEND 1
#define OFFLOAD_ACTION_MISS 2
#define BACKEND_BY_INDEX_ACTION_SET 1
#define BACKEND_BY_INDEX_ACTION_MISS 2

/* vip: (dst IP, dst port) -> mark_vip(). 8-byte key, 4-byte value. */
struct vip_key {
	__be32 dst_addr;   /* network */
	__be16 dst_port;   /* network */
	__u16 pad;
};

struct vip_value {
	__u32 action;      /* host: VIP_ACTION_* */
};

/* backends: (src IP, src port) -> mark_backend(vip_addr, vip_port). 8 / 12 bytes. */
struct backends_key {
	__be32 src_addr;   /* network */
	__be16 src_port;   /* network */
	__u16 pad;
};

struct backends_value {
	__u32 action;      /* host: BACKENDS_ACTION_* */
	__be32 vip_addr;   /* network: the VIP this back-end serves (source of offloaded replies) */
	__be16 vip_port;   /* network */
	__u16 pad;
};

/* frontend_bucket: bucket index -> to_frontend(port, dmac). 4 / 16 bytes. */
struct frontend_bucket_key {
	__u32 bucket;      /* host: 0..FRONTEND_BUCKETS-1 */
};

struct frontend_bucket_value {
	__u32 action;      /* host: FRONTEND_BUCKET_ACTION_* */
	__u32 port;        /* host: P4 egress port of the front-end */
	__u8 dmac[6];      /* network: the front-end's MAC */
	__u16 pad;
};

/* offload: (client IP, client port) -> to_backend(index). 8 / 8 bytes. */
struct offload_key {
	__be32 client_addr; /* network */
	__be16 client_port; /* network */
	__u16 pad;
};

struct offload_value {
	__u32 action;      /* host: OFFLOAD_ACTION_* */
	__u32 index;       /* host: back-end index (key of backend_by_index) */
};

/* backend_by_index: index -> set_backend(port, dmac, dst_addr, dst_port). 4 / 24 bytes. */
struct backend_by_index_key {
	__u32 index;       /* host */
};

struct backend_by_index_value {
	__u32 action;      /* host: BACKEND_BY_INDEX_ACTION_* */
	__u32 port;        /* host: P4 egress port of the back-end */
	__u8 dmac[6];      /* network */
	__u16 pad;
	__be32 dst_addr;   /* network: the back-end's IPv4 address */
	__be16 dst_port;   /* network: the back-end's TCP port */
	__u16 pad2;
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FRONTEND_BUCKET_TABLE_SIZE);
	__type(key, struct frontend_bucket_key);
	__type(value, struct frontend_bucket_value);
} frontend_bucket SEC(".maps");

/* Filled at run time by the front-ends (through the control plane). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OFFLOAD_TABLE_SIZE);
	__type(key, struct offload_key);
	__type(value, struct offload_value);
} offload SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BACKEND_BY_INDEX_TABLE_SIZE);
	__type(key, struct backend_by_index_key);
	__type(value, struct backend_by_index_value);
} backend_by_index SEC(".maps");

/* Direct counters (per-CPU, keyed like their tables; structs.h). */
DIRECT_COUNTER_MAP(vip_counter, struct vip_key, VIP_TABLE_SIZE);
DIRECT_COUNTER_MAP(backends_counter, struct backends_key, BACKENDS_TABLE_SIZE);
DIRECT_COUNTER_MAP(frontend_bucket_counter, struct frontend_bucket_key, FRONTEND_BUCKET_TABLE_SIZE);
DIRECT_COUNTER_MAP(offload_counter, struct offload_key, OFFLOAD_TABLE_SIZE);
DIRECT_COUNTER_MAP(backend_by_index_counter, struct backend_by_index_key, BACKEND_BY_INDEX_TABLE_SIZE);

/* syn_cookie (keyless: the cookie secret) and the SYN-ACK's constants, shared with switch_only. */
#include "synack_tables.h"
/* protected_hosts and trusted_ports (the back-end guard), shared with switch_only. */
#include "guard_tables.h"

#endif
