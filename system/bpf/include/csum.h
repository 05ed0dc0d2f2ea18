/* Internet checksum helpers (RFC 1071, incremental update per RFC 1624).
 *
 * Two kinds of helpers, and when to use which:
 *
 * - csum_replace2/csum_replace4 update a checksum field in place from old and new field values.
 *   They are right for the IPv4 header checksum, which the kernel and NICs always compute in full
 *   (no offload state), in TC and XDP alike. They are also right for L4 checksums in XDP, where a
 *   received frame always carries a complete checksum.
 *
 * - tc_l4_replace_* wrap bpf_l4_csum_replace for L4 checksums in TC programs. A locally generated
 *   skb may be CHECKSUM_PARTIAL (checksum offload, GSO/TSO): its check field then holds only the
 *   folded pseudo-header sum and the device completes it. The kernel helper handles both states:
 *   with BPF_F_PSEUDO_HDR (addresses: fields of the pseudo header) it updates the partial sum, and
 *   without it (ports, seq/ack, anything in the L4 header) it leaves a partial sum alone, which is
 *   correct because the device sums the header later. It also keeps skb->csum right for
 *   CHECKSUM_COMPLETE. Use it for every L4 field rewrite in TC; never hand-patch an L4 checksum there.
 *   UDP: pass udp=1 so that a zero checksum ("no checksum") stays zero (BPF_F_MARK_MANGLED_0).
 *   These helpers may move packet data: re-derive packet pointers after calling them.
 */
#ifndef MIRESGA_BPF_CSUM_H
#define MIRESGA_BPF_CSUM_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), 16-bit one's complement arithmetic. Values are the raw
 * 16-bit words as they sit in the packet (network order on both sides, so no swap is needed). */
static __always_inline void csum_replace2(__u16 *check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~*check;

	sum += (__u16)~old;
	sum += new;
	*check = ~csum_fold32(sum);
}

static __always_inline void csum_replace4(__u16 *check, __u32 old, __u32 new)
{
	__u32 sum = (__u16)~*check;

	sum += (__u16)~(old & 0xffff);
	sum += (__u16)~(old >> 16);
	sum += new & 0xffff;
	sum += new >> 16;
	*check = ~csum_fold32(sum);
}

/* Full checksum of a 20-byte IPv4 header without options (for building headers). */
static __always_inline __u16 csum_ipv4_header20(const void *hdr)
{
	const __u16 *w = hdr;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		if (i != 5)
			sum += w[i];
	return ~csum_fold32(sum);
}

/* TC: rewrite of a 4-byte pseudo-header field (IPv4 source or destination address). */
static __always_inline long tc_l4_replace_addr(struct __sk_buff *skb, __u32 csum_off, __be32 old,
					       __be32 new, int udp)
{
	__u64 flags = BPF_F_PSEUDO_HDR | sizeof(new) | (udp ? BPF_F_MARK_MANGLED_0 : 0);

	return bpf_l4_csum_replace(skb, csum_off, old, new, flags);
}

/* TC: rewrite of a 2-byte L4 header field (a port). */
static __always_inline long tc_l4_replace16(struct __sk_buff *skb, __u32 csum_off, __be16 old,
					    __be16 new, int udp)
{
	__u64 flags = sizeof(new) | (udp ? BPF_F_MARK_MANGLED_0 : 0);

	return bpf_l4_csum_replace(skb, csum_off, old, new, flags);
}

/* TC: rewrite of a 4-byte L4 header field (TCP seq, ack, a SACK edge). */
static __always_inline long tc_l4_replace32(struct __sk_buff *skb, __u32 csum_off, __be32 old,
					    __be32 new)
{
	return bpf_l4_csum_replace(skb, csum_off, old, new, sizeof(new));
}

#endif /* MIRESGA_BPF_CSUM_H */
