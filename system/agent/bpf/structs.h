/* Map key and value structs of the back-end agent. Byte order is stated per field: "network" is
 * big endian as on the wire, "host" is the CPU's order. Mirrored in system/agent/tables.py, whose
 * formats are checked against the compiled object by a test. */
#ifndef MIRESGA_AGENT_STRUCTS_H
#define MIRESGA_AGENT_STRUCTS_H

#include <linux/types.h>

/* flows key: the client endpoint. 8 bytes. */
struct flow_key {
	__be32 client_ip;    /* network order: client IPv4 address */
	__be16 client_port;  /* network order: client TCP port */
	__u16 pad;           /* zero */
};

/* flows value: the translation state of one connection. 40 bytes. */
struct flow_state {
	__u32 s;             /* host order: the switch's ISN (cookie), from the SYN's ack field */
	__u32 delta;         /* host order: b - s mod 2^32, from the kernel's SYN-ACK */
	__u64 flags;         /* host order: FLOW_* bits (consts.h), updated atomically (64 bits: the
			      * BPF instruction set of clang's default CPU has 64-bit atomic fetch-or) */
	__u32 fin_in_end;    /* host order: client sequence number just after its FIN */
	__u32 fin_out_end;   /* host order: back-end sequence number (b space) just after its FIN */
	__u32 rcv_nxt;       /* host order: the client sequence number the back-end's kernel expects
			      * next, as far as the agent knows: the SYN's seq + 1, then the latest ack
			      * the kernel sent (egress only: client segments cannot move it) */
	__u32 s_next;        /* host order: s of a later SYN for this endpoint (FLOW_S_PENDING) */
	__u32 syn_next;      /* host order: that SYN's seq; its s is adopted when the kernel's SYN-ACK
			      * answers it (ack = syn_next + 1, + data of a fast-open SYN) */
	__u32 rcv_high;      /* host order: the end of the furthest in-window client data that passed
			      * ingress (the kernel's rcv_nxt once it has all of it, before its ACK) */
};

/* counters: what the hooks did, one per-CPU value with a field per reason. Packets are skbs
 * (a GSO/GRO packet counts once). 8 bytes per field. */
struct agent_counters {
	__u64 in_packets;        /* every packet the ingress hook saw */
	__u64 in_not_tcp;        /* not IPv4/TCP, or a later IPv4 fragment: untouched */
	__u64 in_malformed;      /* truncated headers or malformed options: untouched */
	__u64 in_syn_learned;    /* SYN with s in its ack field: entry created (or s pending), field zeroed */
	__u64 in_syn_relearned;  /* ... of which for an endpoint with an entry (port reuse, SYN
				  * retransmission, or forged): s held pending until the kernel's SYN-ACK */
	__u64 in_syn_plain;      /* SYN with a zero ack field (not from a front-end): untouched */
	__u64 in_unknown;        /* segment from an endpoint without an entry: untouched */
	__u64 in_no_delta;       /* entry whose delta is not learned yet: untouched */
	__u64 in_translated;     /* ack and SACK edges translated */
	__u64 in_sack_edges;     /* SACK block edges translated */
	__u64 in_fin;            /* FIN from a known endpoint */
	__u64 in_rst;            /* RST from a known endpoint */
	__u64 out_packets;       /* every packet the egress hook saw */
	__u64 out_not_tcp;       /* not IPv4/TCP, or a later IPv4 fragment: untouched */
	__u64 out_malformed;     /* truncated headers: untouched */
	__u64 out_synack_learned;/* SYN-ACK to an endpoint with s: delta stored, seq := s */
	__u64 out_unknown;       /* segment to an endpoint without an entry (or without s) */
	__u64 out_translated;    /* seq translated (the SYN-ACK included) */
	__u64 out_fin;           /* FIN to a known endpoint */
	__u64 out_rst;           /* RST to a known endpoint */
	__u64 removed_closed;    /* entries removed: both FINs seen and acknowledged */
	__u64 removed_rst;       /* entries removed: RST in either direction */
	__u64 removed_plain_syn; /* entries removed: the kernel's SYN-ACK answered a SYN the entry did not
				  * learn from (a plain SYN reused the endpoint); passed untouched */
	__u64 helper_errors;     /* a load/store/checksum helper failed: packet passed as it was */
	__u64 in_rst_kept;       /* RST from a known endpoint whose seq is not what the kernel expects
				  * (RFC 5961: the kernel resets on an exact seq only): entry kept */
	__u64 in_fin_outside;    /* FIN from a known endpoint outside the window: not recorded */
	__u64 out_syn_adopted;   /* SYN-ACK answering a pending SYN: its s replaced the entry's */
};

#endif
