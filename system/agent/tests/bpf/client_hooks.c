/* Test-only hooks on the client side of the real TCP test (system/agent/pair.py).
 *
 * client_egress plays the front-end's part of the contract for a real kernel client: the client
 * kernel's SYN leaves with its ack field set to CLIENT_S (the "switch ISN" s), ACK flag still clear.
 * Nothing else is translated: the client kernel takes the SYN-ACK's seq (s, after the agent) as the
 * server's ISN, so it numbers the server's bytes from s while the server numbers them from b.
 *
 * client_ingress (optional) drops, once, the server segment that carries stream byte DROP_AT
 * (counted from s + 1), so that the client must send SACK blocks that the agent has to translate.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "csum.h"
#include "endian.h"
#include "parsing.h"

#ifndef CLIENT_S
#define CLIENT_S 0
#endif
#ifndef DROP_AT
#define DROP_AT 0xffffffff
#endif

/* dropped: key 0 -> 1 once the segment has been dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

static __always_inline struct tcphdr *tcp_of(struct __sk_buff *skb, struct iphdr **ipp)
{
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;

	cursor_init(&c, (void *)(long)skb->data, (void *)(long)skb->data_end);
	eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != host_to_be16(ETH_P_IP))
		return NULL;
	ip = parse_iphdr(&c);
	if (!ip || ip->protocol != IPPROTO_TCP)
		return NULL;
	*ipp = ip;
	return parse_tcphdr(&c);
}

SEC("tc")
int client_egress(struct __sk_buff *skb)
{
	struct iphdr *ip;
	struct tcphdr *tcp = tcp_of(skb, &ip);
	__be32 old, new = host_to_be32(CLIENT_S);
	__u32 off;

	if (!tcp || !tcp->syn || tcp->ack)
		return TC_ACT_OK;
	old = tcp->ack_seq;
	off = (void *)&tcp->ack_seq - (void *)(long)skb->data;
	if (bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0))
		return TC_ACT_SHOT;
	if (tc_l4_replace32(skb, off + 8, old, new))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("tc")
int client_ingress(struct __sk_buff *skb)
{
	struct iphdr *ip;
	struct tcphdr *tcp = tcp_of(skb, &ip);
	__u32 zero = 0, rel, len;
	__u64 *done;

	if (!tcp || tcp->syn)
		return TC_ACT_OK;
	len = skb->len - ((void *)tcp - (void *)(long)skb->data) - tcp->doff * 4;
	rel = be32_to_host(tcp->seq) - CLIENT_S - 1;
	if (len == 0 || DROP_AT - rel >= len)
		return TC_ACT_OK;
	done = bpf_map_lookup_elem(&dropped, &zero);
	if (!done || *done)
		return TC_ACT_OK;
	*done = 1;
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
