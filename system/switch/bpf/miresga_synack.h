/* The switch's SYN-ACK (docs/miresga-datapath.md): a stateless answer to a client's SYN to a VIP.
 *
 * The client's options are read as the P4 parser reads them: the 32-bit word layouts of the
 * common stacks (syn_parse_options below; a SYN with other layouts gets MSS 536 and no window
 * scaling or SACK beyond what was recognised before). The cookie (system/switch/README.md, "The SYN
 * cookie"; Python reference system/switch/cookie.py) is
 *   (HalfSipHash-2-4(key, m0..m3) & 0xFFFFFF00) | (slot & 1) << 7 | mss_idx<<5 | sack<<4 | ws
 *   m0 = client_ip, m1 = vip, m2 = client_port << 16 | vip_port, m3 = slot << 8 | low 7 bits
 * with the key and slot of the syn_cookie table. Until the control plane has written a key (the
 * table's action is still 0, or the key is 0) a SYN to a VIP is dropped (DROP_NO_COOKIE_KEY).
 * The frame is rebuilt in place at exactly 66 bytes (Ethernet + IPv4 + TCP with 12 option bytes;
 * a SYN is longer or shorter, payload included: bpf_skb_change_tail), both checksums fresh, and
 * sent back out of the ingress port. Ethernet source := the SYN's destination (the switch port's
 * MAC the client addressed: hosts have static neighbour entries pointing at it).
 *
 * Shared by the pipelines that answer SYNs (miresga.c, switch_only.c). The includer's tables
 * header comes first and defines TABLE_SYN_COOKIE; synack_tables.h has the syn_cookie map and the
 * constants. SYNACK_NO_SACK (define it before including): SACK is never offered, whatever the SYN
 * says (switch_only, docs/switch-only-datapath.md): the cookie's sack bit is 0 and bytes 4-5 of
 * the options are NOP NOP. Without it (miresga) the code is exactly what it was.
 */
#ifndef MIRESGA_SWITCH_MIRESGA_SYNACK_H
#define MIRESGA_SWITCH_MIRESGA_SYNACK_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include "endian.h"
#include "csum.h"
#include "pipeline.h"
#include "synack_tables.h"

#ifndef TABLE_SYN_COOKIE
#error "include the pipeline's tables header (it defines TABLE_SYN_COOKIE) before miresga_synack.h"
#endif

#define SYNACK_LEN 66   /* 14 + 20 + 32 */
#define TCP_OPTS_MAX 40

struct synack_frame {
	__u16 align;              /* puts the IPv4 header on a 4-byte boundary */
	struct ethhdr eth;
	struct iphdr ip;
	struct tcphdr tcp;
	__u8 opts[12];
};

struct syn_opts {
	__u16 mss;       /* 0: no MSS option */
	__u8 sack_ok;
	__u8 wscale;     /* NO_WSCALE: none */
};

/* Parse `len` (<= 40) bytes of TCP options at packet offset `off` exactly as the P4 parser does
 * (p4src/include/miresga_parser.p4; Python reference: system/switch/cookie.py SynOptions.parse):
 * 32-bit words, each recognised only as one of
 *   02 04 m m (MSS, word 0 only)   01 03 03 w (window scale, the first one only)
 *   01 01 04 02 (SACK-permitted)   04 02 00 00 (SACK-permitted, then the end)
 *   01 01 01 01 (NOPs)             01 01 08 0a / 04 02 08 0a (timestamps [+ SACK-permitted]: the
 *                                  next two words are its values, not read)
 * and the walk ends at the area's end or at the first other word, keeping what was found (len is
 * doff * 4 - 20: whole words). */
static __always_inline void syn_parse_options(struct __sk_buff *skb, __u32 off, __u32 len,
					      struct syn_opts *o)
{
	__be32 buf[TCP_OPTS_MAX / 4] = {};
	__u32 n = len / 4, skip = 0, w;

	o->mss = 0;
	o->sack_ok = 0;
	o->wscale = NO_WSCALE;
	if (len < 4 || len > TCP_OPTS_MAX)
		return;
	if (bpf_skb_load_bytes(skb, off, buf, n * 4) < 0)
		return;
	for (__u32 i = 0; i < TCP_OPTS_MAX / 4; i++) {
		if (i >= n)
			break;
		if (skip) {             /* a timestamp value word */
			skip--;
			continue;
		}
		w = be32_to_host(buf[i]);
		if (i == 0 && (w >> 16) == 0x0204) {
			o->mss = w & 0xffff;
		} else if ((w >> 8) == 0x010303 && o->wscale == NO_WSCALE) {
			o->wscale = (w & 0xff) > MAX_WSCALE ? MAX_WSCALE : (w & 0xff);
		} else if (w == 0x01010402) {
			o->sack_ok = 1;
		} else if (w == 0x04020000) {
			o->sack_ok = 1;
			break;
		} else if (w == 0x0402080a) {
			o->sack_ok = 1;
			skip = 2;
		} else if (w == 0x0101080a) {
			skip = 2;
		} else if (w != 0x01010101) {
			break;
		}
	}
}

static __always_inline __u32 mss_index(__u16 mss)
{
	if (mss >= 1460)
		return 3;
	if (mss >= 1440)
		return 2;
	if (mss >= 1220)
		return 1;
	return 0;       /* 536, also without an MSS option and below 536 */
}

static __always_inline __u32 rotl32(__u32 x, int b)
{
	return (x << b) | (x >> (32 - b));
}

/* One SipRound of HalfSipHash (32-bit words). */
#define HSIP_ROUND(v0, v1, v2, v3) do {                                   \
		v0 += v1; v1 = rotl32(v1, 5); v1 ^= v0; v0 = rotl32(v0, 16); \
		v2 += v3; v3 = rotl32(v3, 8); v3 ^= v2;                      \
		v0 += v3; v3 = rotl32(v3, 7); v3 ^= v0;                      \
		v2 += v1; v1 = rotl32(v1, 13); v1 ^= v2; v2 = rotl32(v2, 16);\
	} while (0)

/* HalfSipHash-2-4, 32-bit output, of the 16 bytes LE32(m[0..3]) under the key (k0, k1): four
 * message blocks, the length block 16 << 24, four finalisation rounds. */
static __always_inline __u32 halfsiphash24_16(__u32 k0, __u32 k1, const __u32 m[4])
{
	__u32 v0 = k0, v1 = k1, v2 = 0x6c796765 ^ k0, v3 = 0x74656462 ^ k1, b;

#pragma unroll
	for (int i = 0; i < 5; i++) {
		b = i < 4 ? m[i] : (16u << 24);
		v3 ^= b;
		HSIP_ROUND(v0, v1, v2, v3);
		HSIP_ROUND(v0, v1, v2, v3);
		v0 ^= b;
	}
	v2 ^= 0xff;
#pragma unroll
	for (int i = 0; i < 4; i++)
		HSIP_ROUND(v0, v1, v2, v3);
	return v1 ^ v3;
}

static __always_inline __u32 syn_cookie_value(__be32 caddr, __be16 cport, __be32 vaddr, __be16 vport,
					      const struct syn_cookie_value *sc, const struct syn_opts *o)
{
	__u32 low = (mss_index(o->mss) << 5) | ((__u32)o->sack_ok << 4) | o->wscale;
	__u32 m[4];

	m[0] = be32_to_host(caddr);
	m[1] = be32_to_host(vaddr);
	m[2] = ((__u32)be16_to_host(cport) << 16) | be16_to_host(vport);
	m[3] = (sc->slot << 8) | low;
	return (halfsiphash24_16(sc->key[0], sc->key[1], m) & COOKIE_MAC_MASK) | ((sc->slot & 1) << 7) | low;
}

static __always_inline __u16 sum16(const void *p, int words)
{
	const __u16 *w = p;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < words; i++)
		sum += w[i];
	return csum_fold32(sum);
}

/* Answer the SYN (headers already bounds-checked by the caller; IHL is 5). Returns DROP_NONE with
 * md->egress_port = md->in_port, or a DROP_* reason. Invalidates packet pointers. */
static __always_inline __u32 synack_apply(struct __sk_buff *skb, struct pipe_md *md,
					  const struct ethhdr *eth, const struct iphdr *ip,
					  const struct tcphdr *tcp)
{
	struct synack_frame f = {};
	struct syn_cookie_value *sc;
	struct syn_opts o;
	__u32 zero = 0, optlen, sum;

	sc = bpf_map_lookup_elem(&syn_cookie, &zero);
	count_table(TABLE_SYN_COOKIE, 0, md->pkts, md->bytes);   /* keyless: the default action ran */
	if (!sc || sc->action != SYN_COOKIE_ACTION_SET_SECRET || (sc->key[0] | sc->key[1]) == 0)
		return DROP_NO_COOKIE_KEY;      /* no key written yet: answer no SYN */

	optlen = tcp->doff * 4 - sizeof(*tcp);
	__builtin_memcpy(f.eth.h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(f.eth.h_source, eth->h_dest, ETH_ALEN);
	f.eth.h_proto = host_to_be16(ETH_P_IP);
	f.ip.version = 4;
	f.ip.ihl = 5;
	f.ip.tot_len = host_to_be16(SYNACK_LEN - ETH_HLEN);
	f.ip.frag_off = host_to_be16(0x4000);   /* DF */
	f.ip.ttl = SYNACK_TTL;
	f.ip.protocol = IPPROTO_TCP;
	f.ip.saddr = ip->daddr;
	f.ip.daddr = ip->saddr;
	f.tcp.source = tcp->dest;
	f.tcp.dest = tcp->source;
	f.tcp.ack_seq = host_to_be32(be32_to_host(tcp->seq) + 1);
	f.tcp.doff = 8;
	f.tcp.syn = 1;
	f.tcp.ack = 1;
	f.tcp.window = host_to_be16(SWITCH_WINDOW);

	syn_parse_options(skb, ETH_HLEN + sizeof(*ip) + sizeof(*tcp), optlen, &o);
#ifdef SYNACK_NO_SACK
	o.sack_ok = 0;          /* never offered: cookie bit 0, options NOP NOP */
#endif

	f.tcp.seq = host_to_be32(syn_cookie_value(f.ip.daddr, f.tcp.dest, f.ip.saddr, f.tcp.source,
						  sc, &o));

	f.opts[0] = 2;
	f.opts[1] = 4;
	f.opts[2] = SWITCH_MSS >> 8;
	f.opts[3] = SWITCH_MSS & 0xff;
	f.opts[4] = o.sack_ok ? 4 : 1;
	f.opts[5] = o.sack_ok ? 2 : 1;
	f.opts[6] = 1;
	f.opts[7] = o.wscale != NO_WSCALE ? 3 : 1;
	f.opts[8] = o.wscale != NO_WSCALE ? 3 : 1;
	f.opts[9] = o.wscale != NO_WSCALE ? SWITCH_WSCALE : 1;
	f.opts[10] = 1;
	f.opts[11] = 1;

	f.ip.check = ~sum16(&f.ip, sizeof(f.ip) / 2);
	/* TCP: pseudo header (addresses, protocol, TCP length 32) + header + options. */
	sum = sum16(&f.tcp, (sizeof(f.tcp) + sizeof(f.opts)) / 2);
	sum += sum16(&f.ip.saddr, 4);
	sum += host_to_be16(IPPROTO_TCP) + host_to_be16(sizeof(f.tcp) + sizeof(f.opts));
	f.tcp.check = ~csum_fold32(sum);

	if (bpf_skb_change_tail(skb, SYNACK_LEN, 0) < 0)
		return DROP_MALFORMED;
	if (bpf_skb_store_bytes(skb, 0, &f.eth, SYNACK_LEN, BPF_F_RECOMPUTE_CSUM) < 0)
		return DROP_MALFORMED;
	md->egress_port = md->in_port;
	md->bytes = SYNACK_LEN;
	return DROP_NONE;
}

#endif
