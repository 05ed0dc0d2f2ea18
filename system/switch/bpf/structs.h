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

/* route: value = action code and its parameters. 24 bytes. Its direct counter is the entry's key
 * (prefix length and prefix) in route_counter (maps.h), which the data plane builds from prefixlen. */
struct route_value {
	__u32 action;      /* host order: ROUTE_ACTION_* */
	__u32 port;        /* host order: forward(port): P4 egress port, 1..MAX_PORTS */
	__u8 smac[6];      /* network order (as on the wire): forward(smac) */
	__u8 dmac[6];      /* network order (as on the wire): forward(dmac) */
	__u32 prefixlen;   /* host order: the entry's own prefix length (= its key's), 0..32 */
};

/* A direct counter: the value of a per-CPU hash keyed like its table (route_counter, vip_counter,
 * ...). Never inside a table's value: a locked add on a value shared by every CPU costs ~100 ns
 * when contended and ~85 us as a split lock in a VM when the trie places it across a cache line
 * (system/switch/README.md, "Counters"). 16 bytes. */
struct direct_counter {
	__u64 packets;     /* host order: packets (GSO segments) that hit the entry, on this CPU */
	__u64 bytes;       /* host order: bytes of the frames (L2 header included), on this CPU */
};

/* A table's direct counter: a per-CPU hash keyed like the table (struct direct_counter above).
 * The control plane creates the entry (zero) when it inserts the table entry and deletes it with
 * the entry; the data plane adds to its own CPU's copy without atomics. */
#define DIRECT_COUNTER_MAP(name, key_type, size)                                                   \
	struct {                                                                                   \
		__uint(type, BPF_MAP_TYPE_PERCPU_HASH);                                            \
		__uint(max_entries, size);                                                         \
		__type(key, key_type);                                                             \
		__type(value, struct direct_counter);                                              \
	} name SEC(".maps")

/* ports: P4 port number -> interface. 16 bytes. */
struct port_info {
	__u32 ifindex;     /* host order: ifindex in the switch namespace; 0 = port not configured */
	__u32 flags;       /* host order: PORT_F_* */
	__u8 peer_mac[6];  /* with PORT_F_PEER: the MAC address of the veth's peer (the host's interface) */
	__u8 pad[2];
};

/* The port is a veth whose peer lives in another namespace (a host's link): deliver straight into
 * the peer with bpf_redirect_peer, one veth crossing per hop like a cable into a host, instead of
 * transmitting on the port and crossing the backlog a second time. Not set for a peer in the switch
 * namespace itself (the CPU port), where redirect_peer drops. See README "Delivery to a port". */
#define PORT_F_PEER 1

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
