/* Map key and value structs of the front-end fast path. Byte order per field: "network" is big
 * endian as on the wire, "host" is the CPU's. Mirrored in system/frontend/fastpath.py. */
#ifndef MIRESGA_FE_STRUCTS_H
#define MIRESGA_FE_STRUCTS_H

#include <linux/types.h>

/* An IPv4 endpoint: flow key (the client endpoint) and backends key. 8 bytes. */
struct endpoint {
	__be32 addr;          /* network order */
	__be16 port;          /* network order */
	__u16 pad;            /* zero */
};

/* flows: per client endpoint, written by user space. 48 bytes. */
struct flow_value {
	__be32 backend_addr;  /* network order */
	__be16 backend_port;  /* network order */
	__u16 flags;          /* host order: FLOW_F_* */
	__u8 backend_mac[6];  /* as on the wire: destination MAC of frames to the back-end */
	__u8 client_mac[6];   /* as on the wire: destination MAC of frames to the client */
	__u8 own_mac[6];      /* as on the wire: source MAC of every rewritten frame */
	__u16 pad;            /* zero */
	__u32 data_start;     /* host order: FLOW_F_C2B_DATA range start (client sequence number) */
	__u32 data_end;       /* host order: range end (exclusive) */
	__u32 pad2;           /* zero */
	__u64 last_ns;        /* host order: bpf_ktime_get_ns() of the last rewritten segment */
};

/* config: the single entry (key 0). 16 bytes. */
struct fe_config {
	__be32 vip;           /* network order */
	__be16 vip_port;      /* network order */
	__u16 pad;            /* zero */
	__u32 punt_ifindex;   /* host order: frames for user space are redirected to this device's egress */
	__u32 enabled;        /* host order: 0 = pass everything to the kernel */
};

/* fe_counters: per reason (per CPU). 16 bytes. Packets count GSO segments as one skb each. */
struct fe_counter {
	__u64 packets;        /* host order */
	__u64 bytes;          /* host order */
};

#endif
