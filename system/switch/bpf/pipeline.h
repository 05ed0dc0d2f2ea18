/* Per-packet metadata shared by the controls of a pipeline (the emulated "bridged metadata"). */
#ifndef MIRESGA_SWITCH_PIPELINE_H
#define MIRESGA_SWITCH_PIPELINE_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "counters.h"

struct pipe_md {
	__u32 in_port;     /* P4 ingress port, 0 if the interface is not a port */
	__u32 egress_port; /* P4 egress port chosen by a control */
	__u32 pkts;        /* packets this skb stands for (GSO segments, at least 1) */
	__u32 bytes;       /* skb->len: the frame(s) including the Ethernet header */
};

static __always_inline void pipe_md_init(struct __sk_buff *skb, struct pipe_md *md)
{
	__u32 ifindex = skb->ingress_ifindex;
	__u32 *port = bpf_map_lookup_elem(&ifindex_port, &ifindex);

	md->in_port = port ? *port : 0;
	md->egress_port = 0;
	md->pkts = skb->gso_segs ? skb->gso_segs : 1;
	md->bytes = skb->len;
}

/* Count the packet in a table entry's direct counter: `counter_map` (DIRECT_COUNTER_MAP, structs.h) at the
 * table's key. Per-CPU: plain adds, no locked instruction. A missing counter (the microseconds
 * between the control plane's two writes of an insert) counts nothing. */
static __always_inline void count_entry(void *counter_map, const void *key, struct pipe_md *md)
{
	struct direct_counter *c = bpf_map_lookup_elem(counter_map, key);

	if (c) {
		c->packets += md->pkts;
		c->bytes += md->bytes;
	}
}

/* Drop, counted per ingress port and per reason. */
static __always_inline int pipe_drop(struct pipe_md *md, __u32 reason)
{
	count_drop(md->in_port, reason, md->pkts, md->bytes);
	return TC_ACT_SHOT;
}

/* True when the frame is addressed to the port's peer (unicast to peer_mac). Only such frames are
 * delivered into the peer: bpf_redirect_peer skips the peer's eth_type_trans (its scrub even marks
 * the frame PACKET_HOST), so a frame for another MAC, a broadcast or a multicast would be taken by
 * the host's stack as its own; those take the veth transmit, which classifies them as a NIC would. */
static __always_inline int for_peer(struct __sk_buff *skb, const struct port_info *pi)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	const __u8 *dst = data;

	if (data + 6 > data_end)
		return 0;
	return ((dst[0] ^ pi->peer_mac[0]) | (dst[1] ^ pi->peer_mac[1]) | (dst[2] ^ pi->peer_mac[2]) |
		(dst[3] ^ pi->peer_mac[3]) | (dst[4] ^ pi->peer_mac[4]) | (dst[5] ^ pi->peer_mac[5])) == 0;
}

/* Send out of md->egress_port: look up its interface, count, redirect to its egress (or, for a
 * frame addressed to the host behind a veth port, straight into the host's interface: PORT_F_PEER). */
static __always_inline int pipe_emit(struct __sk_buff *skb, struct pipe_md *md)
{
	__u32 port = md->egress_port;
	struct port_info *pi;

	if (port == 0 || port > MAX_PORTS)
		return pipe_drop(md, DROP_NO_EGRESS);
	pi = bpf_map_lookup_elem(&ports, &port);
	if (!pi || pi->ifindex == 0)
		return pipe_drop(md, DROP_NO_EGRESS);
	count_tx(port, md->pkts, md->bytes);
	if ((pi->flags & PORT_F_PEER) && for_peer(skb, pi))
		return bpf_redirect_peer(pi->ifindex, 0);
	return bpf_redirect(pi->ifindex, 0);
}

#endif
