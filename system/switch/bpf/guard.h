/* SPDX-License-Identifier: GPL-2.0 */
/* The back-end guard (docs/miresga-datapath.md "The guard"; ../shared design security.md "Nothing
 * but the front-ends speaks to the back-ends"), shared by pipelines miresga and switch_only: a
 * packet whose IPv4 destination *as it arrived* is a protected host (protected_hosts hit: a
 * back-end's data address) passes only if it came in on a trusted port (trusted_ports hit: a
 * front-end's, a back-end's, switch_only's CPU port); otherwise it is dropped as
 * DROP_UNTRUSTED_PORT. The pipelines apply it to every IPv4 packet that missed `vip` (the client
 * ACKs they rewrite to a back-end hit `vip`, so they pass; client -> VIP traffic pays nothing).
 * Include after l4_pipeline.h and the pipeline's tables header (guard_tables.h). */
#ifndef MIRESGA_SWITCH_GUARD_H
#define MIRESGA_SWITCH_GUARD_H

#include "guard_tables.h"

/* DROP_NONE, or DROP_UNTRUSTED_PORT for a packet to a protected host from an untrusted port. */
static __always_inline __u32 guard_apply(struct pipe_md *md, __be32 daddr)
{
	struct protected_hosts_key pkey = {};
	struct trusted_ports_key tkey = {};
	struct protected_hosts_value *pv;
	struct trusted_ports_value *tv;

	pkey.dst_addr = daddr;
	pv = bpf_map_lookup_elem(&protected_hosts, &pkey);
	if (pv && pv->action != PROTECTED_HOSTS_ACTION_MARK)
		pv = NULL;
	count_table(TABLE_PROTECTED_HOSTS, pv != NULL, md->pkts, md->bytes);
	if (!pv)
		return DROP_NONE;
	count_entry(&protected_hosts_counter, &pkey, md);
	tkey.port = md->in_port;
	tv = bpf_map_lookup_elem(&trusted_ports, &tkey);
	if (tv && tv->action != TRUSTED_PORTS_ACTION_MARK)
		tv = NULL;
	count_table(TABLE_TRUSTED_PORTS, tv != NULL, md->pkts, md->bytes);
	if (!tv)
		return DROP_UNTRUSTED_PORT;
	count_entry(&trusted_ports_counter, &tkey, md);
	return DROP_NONE;
}

/* The guard for a frame the per-connection tables do not parse (not TCP, a fragment, IP options):
 * its IPv4 destination read from the frame. Not IPv4 or too short for it: DROP_NONE (route drops
 * it with its own reason). */
static __always_inline __u32 guard_frame(struct __sk_buff *skb, struct pipe_md *md)
{
	__be16 proto;
	__be32 daddr;

	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) < 0 ||
	    proto != host_to_be16(ETH_P_IP))
		return DROP_NONE;
	if (bpf_skb_load_bytes(skb, IP_DST_OFF, &daddr, sizeof(daddr)) < 0)
		return DROP_NONE;
	return guard_apply(md, daddr);
}

#endif
