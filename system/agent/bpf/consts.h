/* Constants of the back-end agent. Mirrored in system/agent/tables.py (checked by a test). */
#ifndef MIRESGA_AGENT_CONSTS_H
#define MIRESGA_AGENT_CONSTS_H

/* Capacity of the flows map (LRU: the least recently used entry gives way when it is full).
 * Override at build time with -DAGENT_FLOWS_SIZE=N. */
#ifndef AGENT_FLOWS_SIZE
#define AGENT_FLOWS_SIZE 131072
#endif

/* Bytes of TCP options at most (data offset 15 minus the 20-byte header). */
#define TCP_MAX_OPT_LEN 40
/* SACK option: kind 5, length 2 + 8 * blocks, at most 4 blocks fit in 40 bytes. */
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_SACK 5
#define SACK_MAX_BLOCKS 4

/* flow_state.flags bits. */
#define FLOW_S_LEARNED 1      /* s stored from the SYN's ack field */
#define FLOW_DELTA_LEARNED 2  /* delta stored from the kernel's SYN-ACK */
#define FLOW_FIN_IN 4         /* the client's FIN passed ingress (fin_in_end valid) */
#define FLOW_FIN_OUT 8        /* the back-end's FIN passed egress (fin_out_end valid) */
#define FLOW_FIN_IN_ACKED 16  /* the back-end acknowledged the client's FIN */
#define FLOW_FIN_OUT_ACKED 32 /* the client acknowledged the back-end's FIN */
#define FLOW_S_PENDING 64     /* s_next/syn_next hold a later SYN's s, not adopted yet */
#define FLOW_CLOSED (FLOW_FIN_IN | FLOW_FIN_OUT | FLOW_FIN_IN_ACKED | FLOW_FIN_OUT_ACKED)

/* A SYN-ACK answers a SYN when its ack is the SYN's seq + 1 plus at most this much fast-open data. */
#define SYN_DATA_MAX 65535
/* A client FIN is recorded only this far (bytes) at most past rcv_nxt (the kernel's receive
 * window is smaller; the agent's rcv_nxt lags the kernel's by delayed ACKs at most). */
#define AGENT_RCV_WINDOW 8388608

#endif
