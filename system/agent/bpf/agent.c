/* Miresga back-end agent: sequence-number translation on the back-end host (tc clsact).
 *
 * c: client ISN, s: switch ISN (cookie), b: back-end kernel ISN, delta = b - s (mod 2^32).
 * Ingress (client -> back-end):
 *   SYN (no ACK flag) with ack field != 0: zero the ack field; an endpoint without an entry gets
 *   one with s; for an endpoint with an entry, s is held pending (s_next) and adopted only when the
 *   kernel's SYN-ACK answers that SYN (port reuse, a re-steer back): a forged SYN to a live
 *   connection gets the kernel's challenge ACK and changes nothing. SYN with ack field 0: not from a
 *   front-end; untouched (its SYN-ACK removes a stale entry, below).
 *   Other segments from a known endpoint with delta: ack += delta, every SACK edge += delta.
 * Egress (back-end -> client):
 *   SYN-ACK to an endpoint with s: delta = seq - s, stored, if it answers the entry's SYN (or the
 *   pending one, whose s then replaces the entry's); a SYN-ACK answering neither (a plain SYN reused
 *   the endpoint) removes the stale entry and passes untouched. Every segment to a known endpoint
 *   (the SYN-ACK included): seq -= delta; its ack is the kernel's rcv_nxt, remembered.
 * Close: an entry is removed when both FINs have passed and both have been acknowledged (so the
 * last ACK is still translated), on the back-end's RST, or on a client RST that the kernel accepts
 * (RFC 5961: seq exactly the kernel's rcv_nxt, which is the agent's rcv_nxt (its last ACK) or
 * rcv_high (in-window data it has not acknowledged yet) or the client FIN's end, or one short of
 * that after the client's FIN was acknowledged); another RST is passed to
 * the kernel (which answers it with a challenge ACK) and the entry stays. A client FIN outside the
 * window is not recorded. The map is LRU besides.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "counters.h"
#include "segment.h"

static __always_inline struct flow_key key_of(__be32 ip, __be16 port)
{
	struct flow_key k = {.client_ip = ip, .client_port = port, .pad = 0};

	return k;
}

/* Set bits in the entry's flags; remove the entry once its close is complete. */
static __always_inline void flow_mark(struct flow_key *key, struct flow_state *st, __u64 bits,
				      struct agent_counters *cnt)
{
	__u64 old;

	if (!bits)
		return;
	old = __sync_fetch_and_or(&st->flags, bits);
	if ((old & FLOW_CLOSED) != FLOW_CLOSED && ((old | bits) & FLOW_CLOSED) == FLOW_CLOSED) {
		bpf_map_delete_elem(&flows, key);
		COUNT(cnt, removed_closed);
	}
}

/* Would the kernel reset the connection on this client RST (RFC 5961 3.2, Linux's
 * tcp_validate_incoming and tcp_reset_check)? */
static __always_inline int rst_exact(const struct flow_state *st, __u32 seq)
{
	if (seq == st->rcv_nxt || (st->rcv_high && seq == st->rcv_high))
		return 1;
	if ((st->flags & FLOW_FIN_IN) && seq == st->fin_in_end)
		return 1;
	return (st->flags & FLOW_FIN_IN_ACKED) && seq == st->fin_in_end - 1;
}

/* Is the client sequence number `end` in the window the agent allows: rcv_nxt up to
 * AGENT_RCV_WINDOW past it? */
static __always_inline int in_window(const struct flow_state *st, __u32 end)
{
	return seq_geq(end, st->rcv_nxt) && end - st->rcv_nxt < AGENT_RCV_WINDOW;
}

static __always_inline int ingress_syn(struct __sk_buff *skb, struct segment *seg, struct flow_key *key,
				       struct agent_counters *cnt)
{
	struct flow_state fresh = {};
	struct flow_state *st;
	__be32 zero = 0;

	if (seg->ack == 0) {
		COUNT(cnt, in_syn_plain);
		return TC_ACT_OK;
	}
	st = bpf_map_lookup_elem(&flows, key);
	if (st) {
		COUNT(cnt, in_syn_relearned);
		st->s_next = be32_to_host(seg->ack);
		st->syn_next = be32_to_host(seg->seq);
		__sync_fetch_and_or(&st->flags, FLOW_S_PENDING);
	} else {
		fresh.s = be32_to_host(seg->ack);
		fresh.flags = FLOW_S_LEARNED;
		fresh.rcv_nxt = be32_to_host(seg->seq) + 1;
		if (bpf_map_update_elem(&flows, key, &fresh, BPF_ANY)) {
			COUNT(cnt, helper_errors);
			return TC_ACT_OK;
		}
	}
	if (tcp_rewrite32(skb, seg, seg->l4_off + TCP_ACK_OFF, seg->ack, zero)) {
		COUNT(cnt, helper_errors);
		return TC_ACT_OK;
	}
	COUNT(cnt, in_syn_learned);
	return TC_ACT_OK;
}

SEC("tc")
int agent_ingress(struct __sk_buff *skb)
{
	struct agent_counters *cnt = agent_counters();
	struct flow_state *st;
	struct flow_key key;
	struct segment seg;
	enum seg_result r;
	__u64 bits = 0;
	__u32 delta;
	__be32 ack;
	int edges;

	COUNT(cnt, in_packets);
	r = parse_segment(skb, &seg);
	if (r == SEG_NOT_TCP) {
		COUNT(cnt, in_not_tcp);
		return TC_ACT_OK;
	}
	if (r != SEG_OK) {
		COUNT(cnt, in_malformed);
		return TC_ACT_OK;
	}
	key = key_of(seg.saddr, seg.sport);
	if (seg.flags & TCPF_SYN) {
		if (!(seg.flags & TCPF_ACK))
			return ingress_syn(skb, &seg, &key, cnt);
		COUNT(cnt, in_unknown); /* a SYN-ACK to the host: it is the client of that connection */
		return TC_ACT_OK;
	}
	st = bpf_map_lookup_elem(&flows, &key);
	if (!st) {
		COUNT(cnt, in_unknown);
		return TC_ACT_OK;
	}
	if (!(st->flags & FLOW_DELTA_LEARNED)) {
		COUNT(cnt, in_no_delta);
		if (seg.flags & TCPF_RST) {
			if (rst_exact(st, be32_to_host(seg.seq))) {
				bpf_map_delete_elem(&flows, &key);
				COUNT(cnt, removed_rst);
			} else {
				COUNT(cnt, in_rst_kept);
			}
		}
		return TC_ACT_OK;
	}
	delta = st->delta;
	ack = seg.ack;
	if (seg.flags & TCPF_ACK) {
		ack = be32_add(seg.ack, delta);
		if (tcp_rewrite32(skb, &seg, seg.l4_off + TCP_ACK_OFF, seg.ack, ack)) {
			COUNT(cnt, helper_errors);
			return TC_ACT_OK;
		}
	}
	edges = translate_sack(skb, &seg, delta);
	if (edges == -1)
		COUNT(cnt, in_malformed);
	else if (edges < 0)
		COUNT(cnt, helper_errors);
	else
		COUNT_N(cnt, in_sack_edges, edges);
	COUNT(cnt, in_translated);
	if (seg.flags & TCPF_RST) {
		COUNT(cnt, in_rst);
		if (rst_exact(st, be32_to_host(seg.seq))) {
			bpf_map_delete_elem(&flows, &key);
			COUNT(cnt, removed_rst);
		} else {
			COUNT(cnt, in_rst_kept);
		}
		return TC_ACT_OK;
	}
	if (seg.payload_len) {
		__u32 end = be32_to_host(seg.seq) + seg.payload_len;

		if (in_window(st, end) && (!st->rcv_high || seq_geq(end, st->rcv_high)))
			st->rcv_high = end;
	}
	if (seg.flags & TCPF_FIN) {
		__u32 fin = be32_to_host(seg.seq) + seg.payload_len;

		COUNT(cnt, in_fin);
		if (in_window(st, fin)) {
			st->fin_in_end = fin + 1;
			bits |= FLOW_FIN_IN;
		} else {
			COUNT(cnt, in_fin_outside);
		}
	}
	if ((seg.flags & TCPF_ACK) && (st->flags & FLOW_FIN_OUT) &&
	    seq_geq(be32_to_host(ack), st->fin_out_end))
		bits |= FLOW_FIN_OUT_ACKED;
	flow_mark(&key, st, bits, cnt);
	return TC_ACT_OK;
}

SEC("tc")
int agent_egress(struct __sk_buff *skb)
{
	struct agent_counters *cnt = agent_counters();
	struct flow_state *st;
	struct flow_key key;
	struct segment seg;
	enum seg_result r;
	__u64 bits = 0;
	__be32 seq;

	COUNT(cnt, out_packets);
	r = parse_segment(skb, &seg);
	if (r == SEG_NOT_TCP) {
		COUNT(cnt, out_not_tcp);
		return TC_ACT_OK;
	}
	if (r != SEG_OK) {
		COUNT(cnt, out_malformed);
		return TC_ACT_OK;
	}
	key = key_of(seg.daddr, seg.dport);
	st = bpf_map_lookup_elem(&flows, &key);
	if (!st || ((seg.flags & TCPF_SYN) && !(seg.flags & TCPF_ACK))) {
		COUNT(cnt, out_unknown);
		return TC_ACT_OK;
	}
	if (seg.flags & TCPF_SYN) {
		/* The kernel's SYN-ACK (again, if retransmitted): its seq is b; its ack tells which SYN
		 * it answers. */
		__u32 a = be32_to_host(seg.ack);

		if ((st->flags & FLOW_S_PENDING) && a - (st->syn_next + 1) <= SYN_DATA_MAX) {
			st->s = st->s_next;
			st->s_next = 0;
			st->syn_next = 0;
			st->rcv_high = 0;
			st->fin_in_end = 0;
			st->fin_out_end = 0;
			st->flags = FLOW_S_LEARNED;
			COUNT(cnt, out_syn_adopted);
		} else if (a - st->rcv_nxt > SYN_DATA_MAX) {
			bpf_map_delete_elem(&flows, &key);
			COUNT(cnt, removed_plain_syn);
			COUNT(cnt, out_unknown);
			return TC_ACT_OK;
		}
		st->rcv_nxt = a;
		st->delta = be32_to_host(seg.seq) - st->s;
		__sync_fetch_and_or(&st->flags, FLOW_DELTA_LEARNED);
		COUNT(cnt, out_synack_learned);
	} else if (!(st->flags & FLOW_DELTA_LEARNED)) {
		COUNT(cnt, out_unknown);
		return TC_ACT_OK;
	} else if ((seg.flags & TCPF_ACK) && seq_geq(be32_to_host(seg.ack), st->rcv_nxt)) {
		st->rcv_nxt = be32_to_host(seg.ack);
	}
	seq = host_to_be32(be32_to_host(seg.seq) - st->delta);
	if (tcp_rewrite32(skb, &seg, seg.l4_off + TCP_SEQ_OFF, seg.seq, seq)) {
		COUNT(cnt, helper_errors);
		return TC_ACT_OK;
	}
	COUNT(cnt, out_translated);
	if (seg.flags & TCPF_RST) {
		COUNT(cnt, out_rst);
		bpf_map_delete_elem(&flows, &key);
		COUNT(cnt, removed_rst);
		return TC_ACT_OK;
	}
	if (seg.flags & TCPF_FIN) {
		COUNT(cnt, out_fin);
		st->fin_out_end = be32_to_host(seg.seq) + seg.payload_len + 1;
		bits |= FLOW_FIN_OUT;
	}
	if ((seg.flags & TCPF_ACK) && (st->flags & FLOW_FIN_IN) &&
	    seq_geq(be32_to_host(seg.ack), st->fin_in_end))
		bits |= FLOW_FIN_IN_ACKED;
	flow_mark(&key, st, bits, cnt);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
