/* Constants of the front-end fast path. Mirrored in system/frontend/fastpath.py (checked by
 * system/frontend/tests/test_fe_fastpath.py). */
#ifndef MIRESGA_FE_CONSTS_H
#define MIRESGA_FE_CONSTS_H

#ifndef FLOW_TABLE_SIZE
#define FLOW_TABLE_SIZE 65536
#endif
#define BACKEND_TABLE_SIZE 1024

/* flow_value.flags (host order). */
#define FLOW_F_C2B_ACK  0x1   /* client->VIP pure ACKs are rewritten to the back-end */
#define FLOW_F_B2C      0x2   /* back-end->client segments (not SYN/FIN/RST) get source := VIP */
#define FLOW_F_C2B_DATA 0x4   /* client data inside [c2b_data_start, c2b_data_end) is rewritten */

/* Verdict reasons: index into fe_counters. */
#define R_C2B_FAST 0          /* client->VIP rewritten to the back-end in the kernel */
#define R_B2C_FAST 1          /* back-end->client rewritten to come from the VIP in the kernel */
#define R_PUNT_C2B_NO_FLOW 2  /* client->VIP, no flow: to user space (first data, stray ACK) */
#define R_PUNT_C2B_CTRL 3     /* client->VIP SYN/FIN/RST: to user space */
#define R_PUNT_C2B_DATA 4     /* client->VIP payload not cleared for the fast path */
#define R_PUNT_C2B_SLOW 5     /* client->VIP pure ACK of a flow without FLOW_F_C2B_ACK */
#define R_PUNT_B2C_NO_FLOW 6  /* back-end->client, no flow */
#define R_PUNT_B2C_CTRL 7     /* back-end->client SYN/FIN/RST (SYN-ACKs of crafted SYNs) */
#define R_PUNT_B2C_SLOW 8     /* back-end->client of a flow without FLOW_F_B2C */
#define R_PASS 9              /* not for the front-end (not IPv4/TCP, other addresses): kernel */
#define R_ERROR 10            /* a rewrite helper failed: dropped */
#define R_NO_CONFIG 11        /* no configuration yet: passed to the kernel */
#define R_SINK 12             /* frames arriving on the punt device's peer: dropped */
#define NUM_REASONS 13

#endif
