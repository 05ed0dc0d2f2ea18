/* Control Forwarding (p4src/include/forwarding.p4): L3 forwarding with table route.
 *
 * IPv4 without options only (options are dropped and counted, as the P4 program does: its
 * deparser recomputes the checksum over the fixed header). Decrements TTL (drop when TTL <= 1 on arrival) with an incremental update of the
 * IPv4 header checksum, looks up route (LPM on the destination), and on forward(port, smac, dmac)
 * rewrites both MACs and sets the egress port. The header checksum is not verified on arrival
 * (as on Tofino without an explicit Checksum verify in the parser).
 *
 * ARP is dropped and counted: the testbed writes static neighbour entries on every host, so
 * nothing needs ARP answers; a Tofino program would not answer ARP without extra work either, and
 * static entries keep the data path deterministic.
 */
#ifndef MIRESGA_SWITCH_FORWARDING_H
#define MIRESGA_SWITCH_FORWARDING_H

#include <linux/if_ether.h>
#include "parsing.h"
#include "csum.h"
#include "pipeline.h"

/* The matched entry's direct counter is keyed by the entry's own key: its prefix and length. */
static __always_inline void count_route(struct route_value *rv, __be32 daddr, struct pipe_md *md)
{
	struct route_key key = {};
	__u32 plen = rv->prefixlen;

	if (plen > 32)
		return;
	key.prefixlen = plen;
	key.dst_addr = plen ? daddr & host_to_be32(0xffffffffu << (32 - plen)) : 0;
	count_entry(&route_counter, &key, md);
}

/* Returns DROP_NONE with md->egress_port set, or a DROP_* reason. */
static __always_inline __u32 forwarding_apply(struct __sk_buff *skb, struct pipe_md *md)
{
	struct route_value *rv;
	struct route_key key;
	struct cursor cur;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u16 old_word;

	/* Make sure Ethernet + the IPv4 base header are in the linear part. */
	if (skb->data + sizeof(*eth) + sizeof(*ip) > skb->data_end)
		bpf_skb_pull_data(skb, sizeof(*eth) + sizeof(*ip));
	cursor_init(&cur, (void *)(long)skb->data, (void *)(long)skb->data_end);
	eth = parse_ethhdr(&cur);
	if (!eth)
		return DROP_MALFORMED;
	if (eth->h_proto == host_to_be16(ETH_P_ARP))
		return DROP_ARP;
	if (eth->h_proto != host_to_be16(ETH_P_IP))
		return DROP_NOT_IPV4;
	ip = parse_iphdr(&cur);
	if (!ip)
		return DROP_MALFORMED;
	if (ip->ihl != 5)
		return DROP_IP_OPTIONS;
	if (ip->ttl <= 1)
		return DROP_TTL_EXPIRED;

	key.prefixlen = 32;
	key.dst_addr = ip->daddr;
	rv = bpf_map_lookup_elem(&route, &key);
	if (!rv) {
		count_table(TABLE_ROUTE, 0, md->pkts, md->bytes);
		return DROP_TABLE_MISS;
	}
	count_table(TABLE_ROUTE, 1, md->pkts, md->bytes);
	count_route(rv, ip->daddr, md);
	if (rv->action != ROUTE_ACTION_FORWARD)
		return DROP_ACTION;

	/* TTL and protocol share one 16-bit word of the checksum. */
	old_word = *(__u16 *)&ip->ttl;
	ip->ttl--;
	csum_replace2(&ip->check, old_word, *(__u16 *)&ip->ttl);
	__builtin_memcpy(eth->h_source, rv->smac, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, rv->dmac, ETH_ALEN);
	md->egress_port = rv->port;
	return DROP_NONE;
}

#endif
