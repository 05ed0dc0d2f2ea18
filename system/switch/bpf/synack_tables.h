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
#define COOKIE_HASH_MASK 0xFFFFFF80u

/* syn_cookie: keyless; its default action set_cookie_secret(secret). 8 bytes, key u32 0. */
struct syn_cookie_value {
	__u32 action;      /* host: SYN_COOKIE_ACTION_SET_SECRET (0 before the first write: secret 0) */
	__u32 secret;      /* host: the cookie secret (hashed big-endian) */
};

/* An array of one element: the emulated keyless table's default action. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYN_COOKIE_TABLE_SIZE);
	__type(key, __u32);
	__type(value, struct syn_cookie_value);
} syn_cookie SEC(".maps");

#endif
