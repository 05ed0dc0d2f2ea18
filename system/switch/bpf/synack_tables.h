/* The SYN cookie's table and the SYN-ACK's constants, shared by the pipelines whose switch answers
 * a client's SYN with a cookie SYN-ACK (miresga_synack.h): miresga (docs/miresga-datapath.md) and
 * switch_only (docs/switch-only-datapath.md). Included at the end of the pipeline's tables header,
 * which defines TABLE_SYN_COOKIE (the table's id in that pipeline). Mirrored in
 * system/switch/tables.py (SYN_COOKIE, SWITCH_ONLY's syn_cookie) and system/switch/cookie.py.
 */
#ifndef MIRESGA_SWITCH_SYNACK_TABLES_H
#define MIRESGA_SWITCH_SYNACK_TABLES_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define SYN_COOKIE_TABLE_SIZE 1
#define SYN_COOKIE_ACTION_SET_SECRET 1

/* The SYN-ACK (docs/miresga-datapath.md). */
#define SWITCH_MSS 1460
#define SWITCH_WSCALE 7
#define SWITCH_WINDOW 65535
#define SYNACK_TTL 64
#define NO_WSCALE 15
#define MAX_WSCALE 14
#define COOKIE_MAC_MASK 0xFFFFFF00u   /* the MAC bits of the cookie; bit 7 slot parity, 6..0 options */

/* syn_cookie: keyless; its default action set_cookie_secret(key, slot). 16 bytes, key u32 0.
 * Before the control plane's first write the action is 0: the switch answers no SYN. */
struct syn_cookie_value {
	__u32 action;      /* host: SYN_COOKIE_ACTION_SET_SECRET (0 before the first write) */
	__u32 slot;        /* host: the time slot (the PRF reads its low 24 bits, the cookie its parity) */
	__u32 key[2];      /* host u64 as two words: key[0] = k0 = key & 0xffffffff, key[1] = k1 = key >> 32 */
};

/* An array of one element: the emulated keyless table's default action. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYN_COOKIE_TABLE_SIZE);
	__type(key, __u32);
	__type(value, struct syn_cookie_value);
} syn_cookie SEC(".maps");

#endif
