/* The front-end's TC ingress fast path (entry fe_ingress) and the punt device's sink (fe_sink).
 *
 * On the front-end's data interface: client->VIP and back-end->client segments of established,
 * non-offloaded flows are rewritten here (client->back-end: destination MAC/IP/port; back-end->
 * client: source := VIP:port) and sent back out of the same interface. Every other segment for the
 * front-end goes to user space: it is redirected to the egress of the punt device (a veth whose
 * AF_PACKET socket user space reads), so the host's kernel never answers it. Traffic not addressed
 * to the VIP nor coming from a back-end passes to the kernel untouched. Checksums are updated
 * incrementally with the kernel helpers (right for CHECKSUM_PARTIAL and GSO skbs). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "csum.h"
#include "endian.h"
#include "parsing.h"
#include "consts.h"
#include "structs.h"
#include "maps.h"

#define ETH_DST_OFF 0
#define ETH_SRC_OFF 6
#define IP_CSUM_REL 10
#define IP_SRC_REL 12
#define IP_DST_REL 16
#define TCP_SPORT_REL 0
#define TCP_DPORT_REL 2
#define TCP_CSUM_REL 16

static __always_inline int count(struct __sk_buff *skb, __u32 reason)
{
	struct fe_counter *c = bpf_map_lookup_elem(&fe_counters, &reason);

	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
	return 0;
}

static __always_inline int punt(struct __sk_buff *skb, const struct fe_config *cfg, __u32 reason)
{
	count(skb, reason);
	return bpf_redirect(cfg->punt_ifindex, 0);
}

/* Rewrite the MACs, one address (IP_SRC_REL or IP_DST_REL) and its port; redirect out of the
 * ingress interface. Packet pointers are invalid after the helpers; only offsets are used. */
static __always_inline int rewrite(struct __sk_buff *skb, __u32 ip_off, __u32 tcp_off, int dst_side,
				   __be32 old_addr, __be32 new_addr, __be16 old_port, __be16 new_port,
				   const __u8 *dmac, const __u8 *smac, __u32 reason)
{
	__u32 addr_off = ip_off + (dst_side ? IP_DST_REL : IP_SRC_REL);
	__u32 port_off = tcp_off + (dst_side ? TCP_DPORT_REL : TCP_SPORT_REL);
	__u32 csum_off = tcp_off + TCP_CSUM_REL;

	if (bpf_skb_store_bytes(skb, ETH_DST_OFF, dmac, 6, 0) ||
	    bpf_skb_store_bytes(skb, ETH_SRC_OFF, smac, 6, 0) ||
	    tc_l4_replace_addr(skb, csum_off, old_addr, new_addr, 0) ||
	    bpf_l3_csum_replace(skb, ip_off + IP_CSUM_REL, old_addr, new_addr, sizeof(new_addr)) ||
	    bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0) ||
	    tc_l4_replace16(skb, csum_off, old_port, new_port, 0) ||
	    bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0)) {
		count(skb, R_ERROR);
		return TC_ACT_SHOT;
	}
	count(skb, reason);
	return bpf_redirect(skb->ifindex, 0);
}

/* Is seq..seq+len inside [start, end) in sequence space? */
static __always_inline int in_range(__u32 seq, __u32 len, __u32 start, __u32 end)
{
	return (__s32)(seq - start) >= 0 && (__s32)(end - (seq + len)) >= 0;
}

SEC("tc")
int fe_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct tcphdr *tcp;
	struct fe_config *cfg;
	struct flow_value *flow;
	struct endpoint key = {};
	__u32 zero = 0, ip_off, tcp_off, payload, flags;
	__be32 saddr, daddr;
	__be16 sport, dport;
	int ctrl;

	cfg = bpf_map_lookup_elem(&fe_config, &zero);
	if (!cfg || !cfg->enabled) {
		count(skb, R_NO_CONFIG);
		return TC_ACT_OK;
	}
	cursor_init(&c, data, data_end);
	eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != host_to_be16(ETH_P_IP))
		goto pass;
	ip = parse_iphdr(&c);
	if (!ip || ip->protocol != IPPROTO_TCP || ip_is_later_fragment(ip))
		goto pass;
	tcp = parse_tcphdr(&c);
	if (!tcp)
		goto pass;
	ip_off = sizeof(*eth);
	tcp_off = ip_off + ip->ihl * 4;
	payload = be16_to_host(ip->tot_len) - ip->ihl * 4 - tcp->doff * 4;
	saddr = ip->saddr;
	daddr = ip->daddr;
	sport = tcp->source;
	dport = tcp->dest;
	ctrl = tcp->syn || tcp->fin || tcp->rst;

	if (daddr == cfg->vip && dport == cfg->vip_port) {
		key.addr = saddr;
		key.port = sport;
		flow = bpf_map_lookup_elem(&flows, &key);
		if (!flow)
			return punt(skb, cfg, R_PUNT_C2B_NO_FLOW);
		if (ctrl)
			return punt(skb, cfg, R_PUNT_C2B_CTRL);
		flags = flow->flags;
		if (payload == 0) {
			if (!(flags & FLOW_F_C2B_ACK))
				return punt(skb, cfg, R_PUNT_C2B_SLOW);
		} else if (!(flags & FLOW_F_C2B_DATA) ||
			   !in_range(be32_to_host(tcp->seq), payload, flow->data_start, flow->data_end)) {
			return punt(skb, cfg, R_PUNT_C2B_DATA);
		}
		flow->last_ns = bpf_ktime_get_ns();
		return rewrite(skb, ip_off, tcp_off, 1, daddr, flow->backend_addr, dport, flow->backend_port,
			       flow->backend_mac, flow->own_mac, R_C2B_FAST);
	}

	key.addr = saddr;
	key.port = sport;
	if (!bpf_map_lookup_elem(&backends, &key))
		goto pass;
	key.addr = daddr;
	key.port = dport;
	flow = bpf_map_lookup_elem(&flows, &key);
	if (!flow)
		return punt(skb, cfg, R_PUNT_B2C_NO_FLOW);
	if (ctrl)
		return punt(skb, cfg, R_PUNT_B2C_CTRL);
	if (!(flow->flags & FLOW_F_B2C) || flow->backend_addr != saddr || flow->backend_port != sport)
		return punt(skb, cfg, R_PUNT_B2C_SLOW);
	flow->last_ns = bpf_ktime_get_ns();
	return rewrite(skb, ip_off, tcp_off, 0, saddr, cfg->vip, sport, cfg->vip_port,
		       flow->client_mac, flow->own_mac, R_B2C_FAST);
pass:
	count(skb, R_PASS);
	return TC_ACT_OK;
}

/* On the punt device's peer: frames handed to user space end here. */
SEC("tc")
int fe_sink(struct __sk_buff *skb)
{
	count(skb, R_SINK);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
