/* Headers and metadata of pipeline miresga. p4src/miresga.p4 includes the shared headers.p4 with
 * its ingress structs renamed, then these, which extend them with TCP (same field names, so the
 * shared control Forwarding works on them unchanged). */
#ifndef _MIRESGA_MIRESGA_HEADERS_P4_
#define _MIRESGA_MIRESGA_HEADERS_P4_

const bit<8> IP_PROTO_TCP = 6;
const bit<8> TCP_FLAG_FIN = 0x01;
const bit<8> TCP_FLAG_SYN = 0x02;
const bit<8> TCP_FLAG_RST = 0x04;
const bit<8> TCP_FLAG_ACK = 0x10;

#define TCP_OPT_WORDS 10

header tcp_h {
    bit<16> src_port;
    bit<16> dst_port;
    bit<32> seq_no;
    bit<32> ack_no;
    bit<4> data_offset;
    bit<4> res;
    bit<8> flags;
    bit<16> window;
    bit<16> checksum;
    bit<16> urgent_ptr;
}

/* One 32-bit word of a SYN's options (miresga_parser.p4 walks them word by word). The words
 * the parser recognised are extracted into hdr.tcp_opts[0..], the rest stays payload: either way a
 * SYN that the switch does not answer leaves byte for byte as it came. */
header tcp_opt_word_h {
    bit<32> value;
}

/* The 12 option bytes of the switch's SYN-ACK (docs/miresga-datapath.md). */
header synack_opts_h {
    bit<32> mss;       /* 02 04 05 b4 */
    bit<16> sack;      /* 04 02, or 01 01 */
    bit<8> nop;        /* 01 */
    bit<24> wscale;    /* 03 03 07, or 01 01 01 */
    bit<16> nops;      /* 01 01 */
}

/* The HalfSipHash state of a cookie SYN-ACK between recirculation passes (halfsiphash.p4), after
 * Ethernet with ether type SIP_ETHERTYPE; ether_type is the frame's own (IPv4). 42 bytes. */
const bit<16> SIP_ETHERTYPE = 0x88b5;      /* IEEE 802 local experimental ether type 1 */

header cookie_sip_h {
    bit<16> ether_type;
    bit<8> pass;        /* egress passes done */
    bit<8> low8;        /* the cookie's low byte: slot parity, mss_idx, sack_ok, wscale_code */
    bit<7> pad;
    PortId_t port;      /* the SYN's ingress port: the SYN-ACK leaves there (bits 8..0 of its
                         * word, as in ig_intr_md: an ALU copies it without rotating) */
    bit<32> v0;
    bit<32> v1;
    bit<32> v2;
    bit<32> v3;
    bit<32> w0;         /* the message words still to absorb: m0, m1, m2, m3, 16 << 24, then 0 */
    bit<32> w1;
    bit<32> w2;
    bit<32> w3;
    bit<32> w4;
}

struct ingress_headers_t {
    ethernet_h ethernet;
    cookie_sip_h sip;
    ipv4_h ipv4;
    tcp_h tcp;
    synack_opts_h synack_opts;
    tcp_opt_word_h[TCP_OPT_WORDS] tcp_opts;
}

typedef bit<3> miresga_path_t;
const miresga_path_t PATH_ROUTE = 0;        /* control Forwarding (table route) */
const miresga_path_t PATH_SYNACK = 1;       /* answer the SYN */
const miresga_path_t PATH_CLIENT_ACK = 2;   /* client pure ACK: offloaded -> back-end */
const miresga_path_t PATH_BACKEND = 3;      /* back-end -> client: offloaded -> source := VIP */
const miresga_path_t PATH_FRONTEND = 4;     /* to the client endpoint's front-end bucket */
const miresga_path_t PATH_DONE = 5;         /* egress port chosen (rewritten to the back-end) */

struct ingress_metadata_t {
    bool ipv4_options;          /* IHL > 5 (the Forwarding control drops these) */
    miresga_path_t path;
    bool vip_hit;               /* vip hit (mark_vip): the guard does not apply */
    bool guard_drop;            /* the guard dropped it: to a protected host from an untrusted port */
    bool synack;                /* deparser: fresh TCP checksum over the SYN-ACK header */
    bool l4_update;             /* deparser: incremental TCP checksum (addresses/ports rewritten) */
    bit<16> l4_residual;        /* parser: TCP checksum minus addresses, ports and itself */
    bit<16> headers_len;        /* parser: IPv4 + TCP header bytes, 20 + data offset * 4 */
    bit<16> pseudo_proto;       /* 0x0006: protocol word of the pseudo header */
    bit<16> synack_tcp_len;     /* 32: TCP length of the SYN-ACK */
    ipv4_addr_t client_addr;    /* the client endpoint of the packet's connection */
    bit<16> client_port;
    ipv4_addr_t vip_addr;       /* backends: the VIP endpoint of the back-end */
    bit<16> vip_port;
    bit<16> backend_index;
    bit<16> bucket;
    bit<32> cookie_k0;          /* the cookie key (syn_cookie): k0 = key[31:0], k1 = key[63:32] */
    bit<32> cookie_k1;
    bit<32> cookie_slot;        /* the time slot (syn_cookie) */
    bit<32> cookie_keyed;       /* cookie_k0 | cookie_k1: 0 while no key is written */
    bit<32> cookie;
    bit<2> opt_mss_idx;         /* the client's MSS class (parser): 0 536, 1 1220, 2 1440, 3 1460 */
    bit<1> opt_sack;
    bit<1> opt_has_ws;
    bit<4> opt_ws;              /* the client's window-scale shift, at most 14 */
}

#endif
