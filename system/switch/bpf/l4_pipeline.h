/* SPDX-License-Identifier: GPL-2.0 */
/* What the per-connection pipelines (miresga.c, switch_only.c) share: header offsets of an IPv4
 * (no options) TCP frame, TCP flag bits and the parse of a frame into
 * its Ethernet, IPv4 and TCP headers. Include after forwarding.h. */
#ifndef MIRESGA_SWITCH_L4_PIPELINE_H
#define MIRESGA_SWITCH_L4_PIPELINE_H

#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SRC_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
#define TCP_OFF (ETH_HLEN + sizeof(struct iphdr))
#define TCP_SPORT_OFF (TCP_OFF + offsetof(struct tcphdr, source))
#define TCP_DPORT_OFF (TCP_OFF + offsetof(struct tcphdr, dest))
#define TCP_SEQ_OFF (TCP_OFF + offsetof(struct tcphdr, seq))
#define TCP_ACK_OFF (TCP_OFF + offsetof(struct tcphdr, ack_seq))
#define TCP_CSUM_OFF (TCP_OFF + offsetof(struct tcphdr, check))
#define PULL_LEN (ETH_HLEN + sizeof(struct iphdr) + 60)

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

/* The frame's headers when it is TCP in an unfragmented IPv4 packet without IP options (the
 * per-connection tables' traffic); 0 otherwise, and the pipeline routes the frame. Pulls the
 * headers (and up to 60 bytes of TCP header) into the linear area first. */
static __always_inline int parse_l4(struct __sk_buff *skb, struct ethhdr **eth, struct iphdr **ip,
				    struct tcphdr **tcp)
{
	struct cursor cur;

	if (skb->data + PULL_LEN > skb->data_end)
		bpf_skb_pull_data(skb, skb->len < PULL_LEN ? skb->len : PULL_LEN);
	cursor_init(&cur, (void *)(long)skb->data, (void *)(long)skb->data_end);
	*eth = parse_ethhdr(&cur);
	if (!*eth || (*eth)->h_proto != host_to_be16(ETH_P_IP))
		return 0;
	*ip = parse_iphdr(&cur);
	if (!*ip || (*ip)->ihl != 5 || (*ip)->protocol != IPPROTO_TCP ||
	    ((*ip)->frag_off & host_to_be16(0x3fff)))
		return 0;
	*tcp = parse_tcphdr(&cur);
	return *tcp != NULL;
}

#endif
