// SPDX-License-Identifier: GPL-2.0
/* Pipeline "miresga" of the emulated switch (docs/miresga-datapath.md, p4src/miresga.p4): TC
 * clsact ingress on every port.
 *
 * Client -> VIP (vip hit): SYN -> SYN-ACK with the cookie (miresga_synack.h); pure ACK of an
 * offloaded client endpoint -> destination rewritten to backend_by_index[index]; everything else
 * -> the client endpoint's front-end bucket (only the destination MAC rewritten).
 * Not to a VIP (any IPv4, TCP or not): the guard (guard.h) first: to a back-end's address
 * (protected_hosts) only from a trusted port (trusted_ports), else dropped as untrusted_port.
 * Back-end -> client (backends hit): offloaded and not SYN/FIN/RST -> source := the VIP endpoint,
 * then route; otherwise -> the client endpoint's front-end bucket.
 * Everything else (and TCP in IPv4 fragments): route, as the forwarding pipeline does.
 *
 * L4 rewrites use bpf_l3_csum_replace/bpf_l4_csum_replace (right for CHECKSUM_PARTIAL and GSO
 * super-packets, which back-end replies through veth are).
 */
#include "consts.h"
#include "miresga_tables.h"
/* One table_counters slot per table of this pipeline (maps.h sizes it by NUM_TABLES). */
#undef NUM_TABLES
#define NUM_TABLES MIRESGA_NUM_TABLES
#include "forwarding.h"
#include "miresga_synack.h"
#include "miresga_crc32.h"

#include "l4_pipeline.h"
#include "guard.h"

/* Packet to the front-end of the client endpoint's bucket, unchanged but the destination MAC. */
static __always_inline __u32 to_frontend(struct __sk_buff *skb, struct pipe_md *md, __be32 caddr,
					 __be16 cport)
{
	struct frontend_bucket_key key = {};
	struct frontend_bucket_value *v;
	__u8 in[6];

	__builtin_memcpy(in, &caddr, 4);
	__builtin_memcpy(in + 4, &cport, 2);
	key.bucket = ~crc32_update(0xFFFFFFFFu, in, sizeof(in)) & (FRONTEND_BUCKETS - 1);
	v = bpf_map_lookup_elem(&frontend_bucket, &key);
	count_table(TABLE_FRONTEND_BUCKET, v != NULL, md->pkts, md->bytes);
	if (!v)
		return DROP_TABLE_MISS;
	count_entry(&frontend_bucket_counter, &key, md);
	if (v->action != FRONTEND_BUCKET_ACTION_TO_FRONTEND)
		return DROP_ACTION;
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), v->dmac, ETH_ALEN, 0) < 0)
		return DROP_MALFORMED;
	md->egress_port = v->port;
	return DROP_NONE;
}

static __always_inline struct offload_value *offload_lookup(struct pipe_md *md, __be32 caddr,
							    __be16 cport)
{
	struct offload_key key = {};
	struct offload_value *v;

	key.client_addr = caddr;
	key.client_port = cport;
	v = bpf_map_lookup_elem(&offload, &key);
	if (v && v->action != OFFLOAD_ACTION_TO_BACKEND)
		v = NULL;
	count_table(TABLE_OFFLOAD, v != NULL, md->pkts, md->bytes);
	if (v)
		count_entry(&offload_counter, &key, md);
	return v;
}

/* Client pure ACK of an offloaded connection: destination := the back-end. 1 if done. */
static __always_inline int to_backend(struct __sk_buff *skb, struct pipe_md *md, __u32 index,
				      __be32 old_daddr, __be16 old_dport, __u32 *reason)
{
	struct backend_by_index_key key = {};
	struct backend_by_index_value *b;
	__be32 daddr;
	__be16 dport;

	key.index = index;
	b = bpf_map_lookup_elem(&backend_by_index, &key);
	if (b && b->action != BACKEND_BY_INDEX_ACTION_SET)
		b = NULL;
	count_table(TABLE_BACKEND_BY_INDEX, b != NULL, md->pkts, md->bytes);
	if (!b)
		return 0;       /* unknown index: the front-end handles the packet */
	count_entry(&backend_by_index_counter, &key, md);
	daddr = b->dst_addr;
	dport = b->dst_port;
	*reason = DROP_MALFORMED;
	if (tc_l4_replace_addr(skb, TCP_CSUM_OFF, old_daddr, daddr, 0) < 0 ||
	    tc_l4_replace16(skb, TCP_CSUM_OFF, old_dport, dport, 0) < 0 ||
	    bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_daddr, daddr, sizeof(daddr)) < 0 ||
	    bpf_skb_store_bytes(skb, IP_DST_OFF, &daddr, sizeof(daddr), 0) < 0 ||
	    bpf_skb_store_bytes(skb, TCP_DPORT_OFF, &dport, sizeof(dport), 0) < 0 ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), b->dmac, ETH_ALEN, 0) < 0)
		return 1;
	md->egress_port = b->port;
	*reason = DROP_NONE;
	return 1;
}

/* Back-end reply of an offloaded connection: source := the VIP endpoint. */
static __always_inline int rewrite_source(struct __sk_buff *skb, __be32 old_saddr, __be16 old_sport,
					  __be32 saddr, __be16 sport)
{
	if (tc_l4_replace_addr(skb, TCP_CSUM_OFF, old_saddr, saddr, 0) < 0 ||
	    tc_l4_replace16(skb, TCP_CSUM_OFF, old_sport, sport, 0) < 0 ||
	    bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_saddr, saddr, sizeof(saddr)) < 0 ||
	    bpf_skb_store_bytes(skb, IP_SRC_OFF, &saddr, sizeof(saddr), 0) < 0 ||
	    bpf_skb_store_bytes(skb, TCP_SPORT_OFF, &sport, sizeof(sport), 0) < 0)
		return -1;
	return 0;
}

static __always_inline __u32 miresga_apply(struct __sk_buff *skb, struct pipe_md *md)
{
	struct backends_key bkey = {};
	struct backends_value *bv;
	struct offload_value *ov;
	struct vip_key vkey = {};
	struct vip_value *vv;
	struct ethhdr *eth;
	struct tcphdr *tcp;
	struct iphdr *ip;
	__u32 payload, reason;
	__be32 saddr, daddr;
	__be16 sport, dport;
	__u8 flags;

	if (!parse_l4(skb, &eth, &ip, &tcp)) {
		reason = guard_frame(skb, md);
		return reason != DROP_NONE ? reason : forwarding_apply(skb, md);
	}
	saddr = ip->saddr;
	daddr = ip->daddr;
	sport = tcp->source;
	dport = tcp->dest;
	flags = ((__u8 *)tcp)[13];

	vkey.dst_addr = daddr;
	vkey.dst_port = dport;
	vv = bpf_map_lookup_elem(&vip, &vkey);
	if (vv && vv->action != VIP_ACTION_MARK)
		vv = NULL;
	count_table(TABLE_VIP, vv != NULL, md->pkts, md->bytes);
	if (vv) {
		/* Client -> VIP. */
		count_entry(&vip_counter, &vkey, md);
		if ((flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN)
			return synack_apply(skb, md, eth, ip, tcp);
		payload = be16_to_host(ip->tot_len) - sizeof(*ip) - tcp->doff * 4;
		if ((flags & (TCPF_SYN | TCPF_FIN | TCPF_RST | TCPF_ACK)) == TCPF_ACK && payload == 0) {
			ov = offload_lookup(md, saddr, sport);
			if (ov && to_backend(skb, md, ov->index, daddr, dport, &reason))
				return reason;
		}
		return to_frontend(skb, md, saddr, sport);
	}

	/* Not to a VIP: to a back-end only from a trusted port (guard.h). */
	reason = guard_apply(md, daddr);
	if (reason != DROP_NONE)
		return reason;

	bkey.src_addr = saddr;
	bkey.src_port = sport;
	bv = bpf_map_lookup_elem(&backends, &bkey);
	if (bv && bv->action != BACKENDS_ACTION_MARK)
		bv = NULL;
	count_table(TABLE_BACKENDS, bv != NULL, md->pkts, md->bytes);
	if (!bv)
		return forwarding_apply(skb, md);
	/* Back-end -> client. */
	count_entry(&backends_counter, &bkey, md);
	if (!(flags & (TCPF_SYN | TCPF_FIN | TCPF_RST)) && offload_lookup(md, daddr, dport)) {
		if (rewrite_source(skb, saddr, sport, bv->vip_addr, bv->vip_port) < 0)
			return DROP_MALFORMED;
		return forwarding_apply(skb, md);
	}
	return to_frontend(skb, md, daddr, dport);
}

SEC("tc")
int pipe_ingress(struct __sk_buff *skb)
{
	struct pipe_md md;
	__u32 reason;

	pipe_md_init(skb, &md);
	if (md.in_port == 0)
		return pipe_drop(&md, DROP_UNKNOWN_INGRESS);
	count_rx(md.in_port, md.pkts, md.bytes);
	reason = miresga_apply(skb, &md);
	if (reason != DROP_NONE)
		return pipe_drop(&md, reason);
	return pipe_emit(skb, &md);
}

char LICENSE[] SEC("license") = "GPL";
