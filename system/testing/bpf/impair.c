/* Link impairment for tests (no sch_netem on this kernel): drops and reorders TCP segments.
 *
 * Attached with tcx (BPF_TCX_INGRESS / BPF_TCX_EGRESS) to one device, so it runs before, and
 * leaves alone, any legacy tc clsact program already there (the back-end agent, the switch
 * pipeline, the front-end's fast path). Returns TCX_NEXT for everything it lets pass.
 *
 * Matched segments: IPv4 TCP, never SYN or RST (handshakes and resets are not impaired), with a
 * payload unless `match_all` (then pure ACKs and FINs too), and the configured TCP port as source or
 * destination when `port` is set. Each matched segment takes the next value n of a global counter
 * (+ `offset`, the seed); then, in this order:
 *   - dropped if `drop_every` divides n, or with probability drop_permille/1000 (prandom);
 *   - diverted to the delay line if `delay_every` divides n: redirected to the egress of
 *     `delay_ifindex`, a veth whose outgoing frames user space (system/testing/impair.py) reads,
 *     holds for the configured delay and sends again on this device with skb->mark == `mark`.
 * Segments carrying `mark` are re-injected ones: the mark is cleared, they pass unimpaired, and the
 * program checks whether a later matched segment of their flow went out while they were held
 * (`reordered`; else `not_reordered`). Counters count skbs (a GSO packet is one).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "parsing.h"

#define TCX_NEXT (-1)
#define IMPAIR_FLOWS 16384
#define IMPAIR_HELD 16384

struct impair_config {
	__u32 drop_every;    /* drop every Nth matched segment, 0: off */
	__u32 drop_permille; /* random drops per 1000 matched segments, 0: off */
	__u32 delay_every;   /* divert every Nth matched segment to the delay line, 0: off */
	__u32 delay_ifindex; /* the delay line's device (same namespace) */
	__u32 offset;        /* added to the matched counter: which segments are hit */
	__u32 match_all;     /* 0: segments with payload; 1: every segment but SYN and RST */
	__u32 port;          /* TCP port (host order) as source or destination, 0: any */
	__u32 mark;          /* skb->mark of re-injected segments */
};

struct impair_counters {
	__u64 packets;        /* every skb seen */
	__u64 tcp;            /* IPv4 TCP skbs */
	__u64 matched;        /* matched segments (the counter n) */
	__u64 dropped;
	__u64 delayed;        /* diverted to the delay line */
	__u64 redirect_errors;
	__u64 reinjected;     /* came back from the delay line */
	__u64 reordered;      /* re-injected after a later segment of their flow had passed */
	__u64 not_reordered;  /* re-injected with no later segment of their flow passed meanwhile */
	__u64 passed;         /* matched segments let through unimpaired */
	__u64 unmatched;      /* TCP segments not matched (SYN, RST, other port, no payload) */
};

struct flow4 {
	__be32 saddr; /* network order */
	__be32 daddr; /* network order */
	__be16 sport; /* network order */
	__be16 dport; /* network order */
};

struct held_key {
	struct flow4 flow;
	__u32 seq; /* host order */
	__u32 len; /* payload bytes + SYN/FIN */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct impair_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct impair_counters);
} counters SEC(".maps");

/* flow -> matched segments of the flow passed unimpaired so far */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, IMPAIR_FLOWS);
	__type(key, struct flow4);
	__type(value, __u64);
} flows SEC(".maps");

/* a held segment -> its flow's passed count when it was diverted */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, IMPAIR_HELD);
	__type(key, struct held_key);
	__type(value, __u64);
} held SEC(".maps");

#define ADD(c, field) __sync_fetch_and_add(&(c)->field, 1)

static __always_inline __u64 flow_passed(struct flow4 *f)
{
	__u64 *v = bpf_map_lookup_elem(&flows, f);

	return v ? *v : 0;
}

/* A matched segment went out unimpaired: later held segments of its flow are now overtaken. */
static __always_inline void note_passed(struct impair_counters *cnt, struct flow4 *f)
{
	__u64 one = 1, *v;

	ADD(cnt, passed);
	v = bpf_map_lookup_elem(&flows, f);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&flows, f, &one, BPF_NOEXIST);
}

static __always_inline int impair(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	struct impair_config *cfg;
	struct impair_counters *cnt;
	struct held_key hk = {};
	struct cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct tcphdr *tcp;
	struct flow4 f = {};
	__u32 zero = 0, hdr, payload;
	__u64 n, *at;

	cfg = bpf_map_lookup_elem(&config, &zero);
	cnt = bpf_map_lookup_elem(&counters, &zero);
	if (!cfg || !cnt)
		return TCX_NEXT;
	ADD(cnt, packets);
	cursor_init(&c, data, data_end);
	eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != host_to_be16(ETH_P_IP))
		return TCX_NEXT;
	ip = parse_iphdr(&c);
	if (!ip || ip->protocol != IPPROTO_TCP || ip_is_later_fragment(ip))
		return TCX_NEXT;
	tcp = parse_tcphdr(&c);
	if (!tcp)
		return TCX_NEXT;
	ADD(cnt, tcp);
	f.saddr = ip->saddr;
	f.daddr = ip->daddr;
	f.sport = tcp->source;
	f.dport = tcp->dest;
	hdr = (__u32)((void *)tcp - data) + tcp->doff * 4;
	payload = skb->len > hdr ? skb->len - hdr : 0;

	if (cfg->mark && skb->mark == cfg->mark) {
		/* back from the delay line */
		skb->mark = 0;
		ADD(cnt, reinjected);
		hk.flow = f;
		hk.seq = be32_to_host(tcp->seq);
		hk.len = payload + tcp->fin;
		at = bpf_map_lookup_elem(&held, &hk);
		if (at) {
			if (flow_passed(&f) > *at)
				ADD(cnt, reordered);
			else
				ADD(cnt, not_reordered);
			bpf_map_delete_elem(&held, &hk);
		}
		return TCX_NEXT;
	}
	if (tcp->syn || tcp->rst || (!cfg->match_all && payload == 0) ||
	    (cfg->port && tcp->source != host_to_be16(cfg->port) && tcp->dest != host_to_be16(cfg->port))) {
		ADD(cnt, unmatched);
		return TCX_NEXT;
	}
	n = __sync_fetch_and_add(&cnt->matched, 1) + 1 + cfg->offset;
	if ((cfg->drop_every && n % cfg->drop_every == 0) ||
	    (cfg->drop_permille && bpf_get_prandom_u32() % 1000 < cfg->drop_permille)) {
		ADD(cnt, dropped);
		return TC_ACT_SHOT;
	}
	if (cfg->delay_every && cfg->delay_ifindex && n % cfg->delay_every == 0) {
		hk.flow = f;
		hk.seq = be32_to_host(tcp->seq);
		hk.len = payload + tcp->fin;
		n = flow_passed(&f);
		bpf_map_update_elem(&held, &hk, &n, BPF_ANY);
		if (bpf_redirect(cfg->delay_ifindex, 0) == TC_ACT_REDIRECT) {
			ADD(cnt, delayed);
			return TC_ACT_REDIRECT;
		}
		bpf_map_delete_elem(&held, &hk);
		ADD(cnt, redirect_errors);
	}
	note_passed(cnt, &f);
	return TCX_NEXT;
}

SEC("tc")
int impair_tc(struct __sk_buff *skb)
{
	return impair(skb);
}

char LICENSE[] SEC("license") = "GPL";
