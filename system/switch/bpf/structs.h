/* Map key and value structs of the emulated switch. Byte order is stated per field; "host" means
 * the CPU's order (little endian here), "network" means big endian as on the wire. Mirrored in
 * system/switch/tables.py, whose struct formats are checked against this object's map sizes. */
#ifndef MIRESGA_SWITCH_STRUCTS_H
#define MIRESGA_SWITCH_STRUCTS_H

#include <linux/types.h>

/* route: LPM key. 8 bytes. */
struct route_key {
	__u32 prefixlen;   /* host order: LPM prefix length in bits, 0..32 */
	__be32 dst_addr;   /* network order: IPv4 destination */
};

/* route: value = action code, its parameters, and the entry's direct counter. 40 bytes. */
struct route_value {
	__u32 action;      /* host order: ROUTE_ACTION_* */
	__u32 port;        /* host order: forward(port): P4 egress port, 1..MAX_PORTS */
	__u8 smac[6];      /* network order (as on the wire): forward(smac) */
	__u8 dmac[6];      /* network order (as on the wire): forward(dmac) */
	__u32 pad;         /* zero */
	__u64 packets;     /* host order: direct counter, updated by the data plane */
	__u64 bytes;       /* host order: direct counter, bytes of the frames (L2 header included) */
};

/* ports: P4 port number -> interface. 4 bytes. */
struct port_info {
	__u32 ifindex;     /* host order: ifindex in the switch namespace; 0 = port not configured */
};

/* port_counters: per P4 port (per CPU). 40 bytes. Packets count segments of GSO packets. */
struct port_counters {
	__u64 rx_packets;  /* host order */
	__u64 rx_bytes;    /* host order */
	__u64 tx_packets;  /* host order */
	__u64 tx_bytes;    /* host order */
	__u64 drops;       /* host order: packets received on this port and dropped */
};

/* table_counters: per table id (per CPU). 32 bytes. */
struct table_counters {
	__u64 hit_packets;  /* host order */
	__u64 hit_bytes;    /* host order */
	__u64 miss_packets; /* host order */
	__u64 miss_bytes;   /* host order */
};

/* drop_counters: per drop reason (per CPU). 16 bytes. */
struct drop_counters {
	__u64 packets;     /* host order */
	__u64 bytes;       /* host order */
};

#endif
