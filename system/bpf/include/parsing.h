/* Bounds-checked packet parsing for TC and XDP programs (the verifier sees every access checked).
 *
 * A cursor walks the packet; each parse_* returns a pointer to the header or NULL when the packet
 * is too short or malformed. Callers keep the data_end pointer they got from their context.
 */
#ifndef MIRESGA_BPF_PARSING_H
#define MIRESGA_BPF_PARSING_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include "endian.h"

struct cursor {
	void *pos;
	void *end;
};

static __always_inline void cursor_init(struct cursor *c, void *data, void *data_end)
{
	c->pos = data;
	c->end = data_end;
}

static __always_inline struct ethhdr *parse_ethhdr(struct cursor *c)
{
	struct ethhdr *eth = c->pos;

	if ((void *)(eth + 1) > c->end)
		return NULL;
	c->pos = eth + 1;
	return eth;
}

/* IPv4 header with options; NULL if short, not version 4 or IHL < 5. */
static __always_inline struct iphdr *parse_iphdr(struct cursor *c)
{
	struct iphdr *ip = c->pos;
	__u32 len;

	if ((void *)(ip + 1) > c->end)
		return NULL;
	if (ip->version != 4 || ip->ihl < 5)
		return NULL;
	len = ip->ihl * 4;
	if (c->pos + len > c->end)
		return NULL;
	c->pos += len;
	return ip;
}

/* TCP header with options; NULL if short or doff < 5. */
static __always_inline struct tcphdr *parse_tcphdr(struct cursor *c)
{
	struct tcphdr *tcp = c->pos;
	__u32 len;

	if ((void *)(tcp + 1) > c->end)
		return NULL;
	if (tcp->doff < 5)
		return NULL;
	len = tcp->doff * 4;
	if (c->pos + len > c->end)
		return NULL;
	c->pos += len;
	return tcp;
}

static __always_inline struct udphdr *parse_udphdr(struct cursor *c)
{
	struct udphdr *udp = c->pos;

	if ((void *)(udp + 1) > c->end)
		return NULL;
	c->pos = udp + 1;
	return udp;
}

/* An IPv4 fragment other than the first carries no L4 header. */
static __always_inline int ip_is_later_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & host_to_be16(0x1fff)) != 0;
}

#endif /* MIRESGA_BPF_PARSING_H */
