// SPDX-License-Identifier: GPL-2.0
/* Pipeline "forwarding" of the emulated switch: L3 forwarding only (used by the software
 * baselines). TC clsact ingress on every port of the switch namespace; see p4src/forwarding.p4. */
#include "forwarding.h"

SEC("tc")
int pipe_ingress(struct __sk_buff *skb)
{
	struct pipe_md md;
	__u32 reason;

	pipe_md_init(skb, &md);
	if (md.in_port == 0)
		return pipe_drop(&md, DROP_UNKNOWN_INGRESS);
	count_rx(md.in_port, md.pkts, md.bytes);
	reason = forwarding_apply(skb, &md);
	if (reason != DROP_NONE)
		return pipe_drop(&md, reason);
	return pipe_emit(skb, &md);
}

char LICENSE[] SEC("license") = "GPL";
