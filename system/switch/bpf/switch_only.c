// SPDX-License-Identifier: GPL-2.0
/* Pipeline "switch_only" of the emulated switch (docs/switch-only-datapath.md,
 * p4src/switch_only.p4): the switch-only baseline. TC clsact ingress on every port.
 *
 * Client -> VIP (vip hit): SYN without ACK -> the cookie SYN-ACK (miresga_synack.h, SACK never
 * offered); SYN, FIN or RST, or a conn_in miss -> the CPU port (slow_path), unchanged; conn_in hit
 * -> destination := the back-end, ack += ack_delta, MACs := the entry's, out of its port.
 * Not to a VIP (any IPv4, TCP or not): the guard (guard.h) first: to a back-end's address
 * (protected_hosts) only from a trusted port (trusted_ports: back-ends, the CPU port), else
 * dropped as untrusted_port.
 * Back-end -> client (backends hit): no SYN/FIN/RST and a conn_out hit -> source := the VIP
 * endpoint, seq += seq_delta (the control plane stores -delta), then route; otherwise -> the CPU port, unchanged.
 * Everything else (the slow path's own frames, and TCP in IPv4 fragments): route.
 *
 * L4 rewrites use bpf_l3_csum_replace/bpf_l4_csum_replace (right for CHECKSUM_PARTIAL and GSO
 * super-packets, which back-end replies through veth are: with a partial checksum the check field
 * holds the pseudo header's sum only, so addresses update it and seq/ack/ports leave it alone).
 */
#include "consts.h"
#include "switch_only_tables.h"
/* One table_counters slot per table of this pipeline (maps.h sizes it by NUM_TABLES). */
#undef NUM_TABLES
#define NUM_TABLES SWITCH_ONLY_NUM_TABLES
#include "forwarding.h"
#define SYNACK_NO_SACK
#include "miresga_synack.h"

#include "l4_pipeline.h"
#include "guard.h"

#define TCPF_ENDS (TCPF_SYN | TCPF_FIN | TCPF_RST)

/* The packet to the CPU port (slow_path's default action), unchanged. Before the control plane
 * has set the port it is 0: the packet is dropped as no_egress. */
static __always_inline __u32 to_slow_path(struct pipe_md *md)
{
	struct slow_path_value *v;
	__u32 zero = 0;

	v = bpf_map_lookup_elem(&slow_path, &zero);
	count_table(TABLE_SLOW_PATH, 0, md->pkts, md->bytes);   /* keyless: the default action ran */
	md->egress_port = v && v->action == SLOW_PATH_ACTION_SET ? v->port : 0;
	return DROP_NONE;
}

/* conn_in hit: destination := the back-end, ack += delta, MACs := the entry's. */
static __always_inline __u32 to_backend(struct __sk_buff *skb, struct pipe_md *md,
					 const struct conn_in_value *v, __be32 old_daddr,
					 __be16 old_dport, __be32 old_ack)
{
	__be32 daddr = v->backend_addr;
	__be16 dport = v->backend_port;
	__be32 ack = host_to_be32(be32_to_host(old_ack) + v->ack_delta);

	if (tc_l4_replace_addr(skb, TCP_CSUM_OFF, old_daddr, daddr, 0) < 0 ||
	    tc_l4_replace16(skb, TCP_CSUM_OFF, old_dport, dport, 0) < 0 ||
	    tc_l4_replace32(skb, TCP_CSUM_OFF, old_ack, ack) < 0 ||
	    bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_daddr, daddr, sizeof(daddr)) < 0 ||
	    bpf_skb_store_bytes(skb, IP_DST_OFF, &daddr, sizeof(daddr), 0) < 0 ||
	    bpf_skb_store_bytes(skb, TCP_DPORT_OFF, &dport, sizeof(dport), 0) < 0 ||
	    bpf_skb_store_bytes(skb, TCP_ACK_OFF, &ack, sizeof(ack), 0) < 0 ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), v->smac, ETH_ALEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), v->dmac, ETH_ALEN, 0) < 0)
		return DROP_MALFORMED;
	md->egress_port = v->port;
	return DROP_NONE;
}

/* conn_out hit: source := the VIP endpoint, seq += seq_delta, the negated delta (route sets port
 * and MACs). */
static __always_inline int to_client(struct __sk_buff *skb, const struct conn_out_value *v,
				     __be32 old_saddr, __be16 old_sport, __be32 old_seq)
{
	__be32 saddr = v->vip_addr;
	__be16 sport = v->vip_port;
	__be32 seq = host_to_be32(be32_to_host(old_seq) + v->seq_delta);   /* seq_delta = -delta */

	if (tc_l4_replace_addr(skb, TCP_CSUM_OFF, old_saddr, saddr, 0) < 0 ||
	    tc_l4_replace16(skb, TCP_CSUM_OFF, old_sport, sport, 0) < 0 ||
	    tc_l4_replace32(skb, TCP_CSUM_OFF, old_seq, seq) < 0 ||
	    bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_saddr, saddr, sizeof(saddr)) < 0 ||
	    bpf_skb_store_bytes(skb, IP_SRC_OFF, &saddr, sizeof(saddr), 0) < 0 ||
	    bpf_skb_store_bytes(skb, TCP_SPORT_OFF, &sport, sizeof(sport), 0) < 0 ||
	    bpf_skb_store_bytes(skb, TCP_SEQ_OFF, &seq, sizeof(seq), 0) < 0)
		return -1;
	return 0;
}

static __always_inline __u32 switch_only_apply(struct __sk_buff *skb, struct pipe_md *md)
{
	struct conn_out_key okey = {};
	struct conn_in_key ikey = {};
	struct backends_key bkey = {};
	struct conn_out_value *ov;
	struct conn_in_value *iv;
	struct backends_value *bv;
	struct vip_key vkey = {};
	struct vip_value *vv;
	struct ethhdr *eth;
	struct tcphdr *tcp;
	struct iphdr *ip;
	__be32 saddr, daddr, seq, ack;
	__be16 sport, dport;
	__u32 reason;
	__u8 flags;

	if (!parse_l4(skb, &eth, &ip, &tcp)) {
		reason = guard_frame(skb, md);
		return reason != DROP_NONE ? reason : forwarding_apply(skb, md);
	}
	saddr = ip->saddr;
	daddr = ip->daddr;
	sport = tcp->source;
	dport = tcp->dest;
	seq = tcp->seq;
	ack = tcp->ack_seq;
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
		if (flags & TCPF_ENDS)
			return to_slow_path(md);
		ikey.client_addr = saddr;
		ikey.client_port = sport;
		ikey.vip_addr = daddr;
		ikey.vip_port = dport;
		iv = bpf_map_lookup_elem(&conn_in, &ikey);
		if (iv && iv->action != CONN_IN_ACTION_TO_BACKEND)
			iv = NULL;
		count_table(TABLE_CONN_IN, iv != NULL, md->pkts, md->bytes);
		if (!iv)
			return to_slow_path(md);
		count_entry(&conn_in_counter, &ikey, md);
		return to_backend(skb, md, iv, daddr, dport, ack);
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
	if (flags & TCPF_ENDS)
		return to_slow_path(md);
	okey.backend_addr = saddr;
	okey.backend_port = sport;
	okey.client_addr = daddr;
	okey.client_port = dport;
	ov = bpf_map_lookup_elem(&conn_out, &okey);
	if (ov && ov->action != CONN_OUT_ACTION_TO_CLIENT)
		ov = NULL;
	count_table(TABLE_CONN_OUT, ov != NULL, md->pkts, md->bytes);
	if (!ov)
		return to_slow_path(md);
	count_entry(&conn_out_counter, &okey, md);
	if (to_client(skb, ov, saddr, sport, seq) < 0)
		return DROP_MALFORMED;
	return forwarding_apply(skb, md);
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
	reason = switch_only_apply(skb, &md);
	if (reason != DROP_NONE)
		return pipe_drop(&md, reason);
	return pipe_emit(skb, &md);
}

char LICENSE[] SEC("license") = "GPL";
