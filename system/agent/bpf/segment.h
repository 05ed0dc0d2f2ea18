/* A TCP segment as the agent needs it: addresses, ports, seq/ack, flags and the offsets of the
 * fields it rewrites. Parsed once with direct packet access; every rewrite afterwards goes through
 * helpers (bpf_skb_store_bytes, bpf_l4_csum_replace), which make a cloned skb's header private
 * (TCP keeps the original of every transmitted skb for retransmission) and may move packet data,
 * so no packet pointer outlives parse_segment. */
#ifndef MIRESGA_AGENT_SEGMENT_H
#define MIRESGA_AGENT_SEGMENT_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include "csum.h"
#include "endian.h"
#include "parsing.h"
#include "consts.h"

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

/* Offset of the flags byte, seq, ack and checksum in the TCP header. */
#define TCP_SEQ_OFF 4
#define TCP_ACK_OFF 8
#define TCP_FLAGS_OFF 13
#define TCP_CSUM_OFF 16

/* Enough to make Ethernet + IPv4 (with options) + TCP (with options) linear. */
#define SEG_PULL_LEN (ETH_HLEN + 60 + 60)

enum seg_result { SEG_OK = 0, SEG_NOT_TCP = 1, SEG_SHORT = 2 };

struct segment {
	__u32 l4_off;       /* host order: TCP header offset from the start of the frame */
	__u32 hdr_len;      /* host order: TCP header length in bytes (options included) */
	__u32 payload_len;  /* host order: TCP payload bytes (a GSO packet: all of them) */
	__be32 saddr;       /* network order */
	__be32 daddr;       /* network order */
	__be16 sport;       /* network order */
	__be16 dport;       /* network order */
	__be32 seq;         /* network order, as in the packet */
	__be32 ack;         /* network order, as in the packet */
	__u8 flags;         /* TCPF_* bits of the flags byte */
};

static __always_inline enum seg_result parse_direct(struct __sk_buff *skb, struct segment *seg)
{
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 tot;

	cursor_init(&c, (void *)(long)skb->data, (void *)(long)skb->data_end);
	eth = parse_ethhdr(&c);
	if (!eth)
		return SEG_SHORT;
	if (eth->h_proto != host_to_be16(ETH_P_IP))
		return SEG_NOT_TCP;
	ip = parse_iphdr(&c);
	if (!ip)
		return SEG_SHORT;
	if (ip->protocol != IPPROTO_TCP || ip_is_later_fragment(ip))
		return SEG_NOT_TCP;
	tcp = parse_tcphdr(&c);
	if (!tcp)
		return SEG_SHORT;
	seg->l4_off = (void *)tcp - (void *)(long)skb->data;
	seg->hdr_len = tcp->doff * 4;
	/* tot_len is 0 in a BIG TCP packet (> 64 KiB); then the skb length counts. */
	tot = be16_to_host(ip->tot_len);
	if (tot == 0)
		tot = skb->len - ETH_HLEN;
	tot -= ip->ihl * 4;
	seg->payload_len = tot > seg->hdr_len ? tot - seg->hdr_len : 0;
	seg->saddr = ip->saddr;
	seg->daddr = ip->daddr;
	seg->sport = tcp->source;
	seg->dport = tcp->dest;
	seg->seq = tcp->seq;
	seg->ack = tcp->ack_seq;
	seg->flags = ((__u8 *)tcp)[TCP_FLAGS_OFF];
	return SEG_OK;
}

/* Parse; pull the headers into the linear area once if they are not there. */
static __always_inline enum seg_result parse_segment(struct __sk_buff *skb, struct segment *seg)
{
	enum seg_result r = parse_direct(skb, seg);
	__u32 len = skb->len;

	if (r != SEG_SHORT || len <= skb->data_end - skb->data)
		return r;
	if (bpf_skb_pull_data(skb, len < SEG_PULL_LEN ? len : SEG_PULL_LEN))
		return SEG_SHORT;
	return parse_direct(skb, seg);
}

/* Write a 4-byte TCP field at `off` and update the TCP checksum incrementally (correct for
 * CHECKSUM_PARTIAL/GSO skbs too: see csum.h). 0 on success. */
static __always_inline int tcp_rewrite32(struct __sk_buff *skb, const struct segment *seg, __u32 off,
					 __be32 old, __be32 new)
{
	if (old == new)
		return 0;
	if (bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0))
		return -1;
	if (tc_l4_replace32(skb, seg->l4_off + TCP_CSUM_OFF, old, new))
		return -1;
	return 0;
}

static __always_inline __be32 be32_add(__be32 v, __u32 delta)
{
	return host_to_be32(be32_to_host(v) + delta);
}

/* Options are copied into a buffer of a power-of-two size and indexed with a mask, which the
 * verifier can bound (a range check on a copy of the index is lost on the register it reads).
 * The mask is applied in assembly so that clang cannot drop it as redundant. The walk runs under
 * bpf_loop so that the verifier checks one step once instead of every path through 40 steps. */
#define OPT_BUF_MASK 63

static __always_inline __u64 opt_index(__u64 i)
{
	asm volatile("%0 &= 63" : "+r"(i));
	return i;
}

struct opt_walk {
	__u8 opts[OPT_BUF_MASK + 1]; /* the options, zero padded */
	__u32 optlen;                /* bytes of options, <= TCP_MAX_OPT_LEN */
	__u32 pos;                   /* next option's offset in opts */
	__u32 sack_off;              /* result: first SACK edge's offset in opts */
	__s32 blocks;                /* result: SACK blocks (0: none), -1: malformed options */
};

/* One step of the walk (a bpf_loop callback): 0 to go on, 1 to stop. */
static long opt_step(__u64 index, void *ctx)
{
	struct opt_walk *w = ctx;
	__u64 i = w->pos;
	__u8 kind, len;

	if (i >= w->optlen || i >= TCP_MAX_OPT_LEN)
		return 1;
	kind = w->opts[opt_index(i)];
	if (kind == TCPOPT_EOL)
		return 1;
	if (kind == TCPOPT_NOP) {
		w->pos = i + 1;
		return 0;
	}
	if (i + 1 >= w->optlen)
		goto malformed;
	len = w->opts[opt_index(i + 1)];
	if (len < 2 || i + len > w->optlen)
		goto malformed;
	if (kind == TCPOPT_SACK) {
		if (len < 10 || (len - 2) % 8 != 0)
			goto malformed;
		w->sack_off = i + 2;
		w->blocks = (len - 2) / 8;
		return 1;
	}
	w->pos = i + len;
	return 0;
malformed:
	w->blocks = -1;
	return 1;
}

/* Add delta to every SACK block edge. Returns the number of edges rewritten, -1 on malformed
 * options, -2 on a helper failure. */
static __always_inline int translate_sack(struct __sk_buff *skb, const struct segment *seg, __u32 delta)
{
	struct opt_walk w = {};
	__u32 optlen = seg->hdr_len - sizeof(struct tcphdr);
	__u32 base = seg->l4_off + sizeof(struct tcphdr);
	__u32 data_off;
	int blocks, edges = 0;

	if (optlen == 0 || optlen > TCP_MAX_OPT_LEN)
		return 0;
	if (bpf_skb_load_bytes(skb, base, w.opts, optlen))
		return -2;
	w.optlen = optlen;
	bpf_loop(TCP_MAX_OPT_LEN, opt_step, &w, 0);
	blocks = w.blocks;
	data_off = w.sack_off;
	if (blocks <= 0)
		return blocks;
	for (int e = 0; e < 2 * SACK_MAX_BLOCKS; e++) {
		__u32 off = base + data_off + 4 * e;
		__be32 old;

		if (e >= 2 * blocks)
			break;
		if (bpf_skb_load_bytes(skb, off, &old, sizeof(old)))
			return -2;
		if (tcp_rewrite32(skb, seg, off, old, be32_add(old, delta)))
			return -2;
		edges++;
	}
	return edges;
}

/* a >= b in sequence space (mod 2^32). */
static __always_inline int seq_geq(__u32 a, __u32 b)
{
	return (__s32)(a - b) >= 0;
}

#endif
