/* TNA ingress parser and deparser of pipeline miresga (the egress ones are shared: parser.p4).
 *
 * TCP is parsed in IPv4 without options and not fragmented. The options of a SYN (without ACK)
 * are read as 32-bit words, the way the common stacks lay them out (docs/miresga-datapath.md,
 * "SYN options"): a word is recognised only when it is one of
 *   02 04 m m     MSS m (as word 0 only)    01 03 03 w    NOP, window scale w (the first one only)
 *   01 01 04 02   NOP NOP SACK-permitted    04 02 00 00   SACK-permitted EOL EOL (ends the walk)
 *   01 01 01 01   NOPs
 *   01 01 08 0a   NOP NOP, timestamps: the next two words are its values (not read)
 *   04 02 08 0a   SACK-permitted, timestamps: the same
 * (Linux with or without timestamps/SACK, Windows, macOS and FreeBSD SYNs are sequences of these).
 * The walk ends at the end of the option area or at the first word it does not recognise (EOL,
 * another kind, another alignment, a second window scale): what was found before counts, the rest
 * is not read. Without a recognised MSS the cookie says 536, the fallback of Linux SYN cookies; no
 * window scaling or SACK unless recognised. The MSS is classified (536/1220/1440/1460) and the
 * window scale capped at 14 here, by value ranges. The eBPF twin (system/switch/bpf/
 * miresga_synack.h, syn_parse_options) and system/switch/cookie.py (SynOptions.parse) implement
 * exactly this walk.
 *
 * Recognised words are extracted into hdr.tcp_opts[i] (constant index per state: a Tofino parser
 * writes each PHV container once per path), the rest of the packet is payload, so a SYN that the
 * switch does not answer leaves byte for byte as it came. The word count bound is a ParserCounter
 * loaded with the option length in words.
 *
 * The TCP checksum residual (checksum minus addresses, ports and itself) is deposited for the
 * incremental update of the rewrite paths; the addresses are subtracted in parse_ipv4, the state
 * that extracts them (a Tofino rule). The SYN-ACK's checksum is computed fresh over its 32-byte
 * header. TCP_REWRITTEN_IPV4/TCP_REWRITTEN_TCP list the header fields a rewrite may change (left
 * out of the residual, added back by the deparser); pipeline switch_only (p4src/switch_only.p4)
 * defines TCP_REWRITTEN_TCP with seq and ack too before including this file.
 */
#ifndef _MIRESGA_MIRESGA_PARSER_P4_
#define _MIRESGA_MIRESGA_PARSER_P4_

#ifndef TCP_REWRITTEN_IPV4
#define TCP_REWRITTEN_IPV4 hdr.ipv4.src_addr, hdr.ipv4.dst_addr
#endif
#ifndef TCP_REWRITTEN_TCP
#define TCP_REWRITTEN_TCP hdr.tcp.src_port, hdr.tcp.dst_port
#endif
#define TCP_REWRITTEN_FIELDS TCP_REWRITTEN_IPV4, TCP_REWRITTEN_TCP

/* The states of option word I (NEXT = I + 1) in variant V: "a" before a window scale word, "b"
 * after one (a Tofino parser writes a field at most once per path, so a second window scale word
 * is not recognised: it ends the walk; the MSS word is recognised as word 0 only, opt_word_0).
 * Recognise the word by lookahead, extract it into hdr.tcp_opts[I], capture, go on. */
#define OPT_WORD_STATES(V, I, NEXT, ON_WS, ON_WS_MAX)                                                    \
    state opt_word_##V##_##I {                                                                \
        transition select(opt_counter.is_zero(), pkt.lookahead<bit<32>>()) {                   \
            (true, _): accept;                                                                \
            (false, 0x01030300 .. 0x0103030e): ON_WS;                                         \
            (false, 0x01030300 &&& 0xffffff00): ON_WS_MAX;                                    \
            (false, 0x01010402): opt_sack_##V##_##I;                                          \
            (false, 0x01010101): opt_nops_##V##_##I;                                          \
            (false, 0x0101080a): opt_ts_##V##_##I;                                            \
            (false, 0x0402080a): opt_sack_ts_##V##_##I;                                       \
            (false, 0x04020000): opt_sack_end_##V##_##I;                                      \
            default: accept;                                                                  \
        }                                                                                     \
    }                                                                                         \
    state opt_sack_##V##_##I {                                                                \
        pkt.extract(hdr.tcp_opts[I]);                                                         \
        ig_md.opt_sack = 1;                                                                   \
        opt_counter.decrement(8w1);                                                           \
        transition opt_word_##V##_##NEXT;                                                     \
    }                                                                                         \
    state opt_nops_##V##_##I {                                                                \
        pkt.extract(hdr.tcp_opts[I]);                                                         \
        opt_counter.decrement(8w1);                                                           \
        transition opt_word_##V##_##NEXT;                                                     \
    }                                                                                         \
    state opt_ts_##V##_##I {                                                                  \
        pkt.extract(hdr.tcp_opts[I]);                                                         \
        opt_counter.decrement(8w1);                                                           \
        transition opt_tsval_##V##_##NEXT;                                                    \
    }                                                                                         \
    state opt_sack_ts_##V##_##I {                                                             \
        pkt.extract(hdr.tcp_opts[I]);                                                         \
        ig_md.opt_sack = 1;                                                                   \
        opt_counter.decrement(8w1);                                                           \
        transition opt_tsval_##V##_##NEXT;                                                    \
    }                                                                                         \
    state opt_sack_end_##V##_##I {                                                            \
        pkt.extract(hdr.tcp_opts[I]);                                                         \
        ig_md.opt_sack = 1;                                                                   \
        transition accept;                                                                    \
    }

/* The window scale word I: captured once (a shift above 14 counts as 14, RFC 7323), then
 * variant b. */
#define OPT_WS_STATE(I, NEXT)                                                                 \
    state opt_ws_##I {                                                                        \
        pkt.extract(hdr.tcp_opts[I]);                                                         \
        ig_md.opt_ws = hdr.tcp_opts[I].value[3:0];                                            \
        ig_md.opt_has_ws = 1;                                                                 \
        opt_counter.decrement(8w1);                                                           \
        transition opt_word_b_##NEXT;                                                         \
    }                                                                                         \
    state opt_ws_##I##_max {                                                                  \
        pkt.extract(hdr.tcp_opts[I]);                                                         \
        ig_md.opt_ws = 14;                                                                    \
        ig_md.opt_has_ws = 1;                                                                 \
        opt_counter.decrement(8w1);                                                           \
        transition opt_word_b_##NEXT;                                                         \
    }

/* The two words of timestamp values after a timestamps word: TSval at word I, then TSecr. */
#define OPT_TSVAL_STATES(V, I, NEXT)                                                          \
    state opt_tsval_##V##_##I {                                                               \
        transition select(opt_counter.is_zero()) {                                            \
            true: accept;                                                                     \
            default: opt_tsval_x_##V##_##I;                                                   \
        }                                                                                     \
    }                                                                                         \
    state opt_tsval_x_##V##_##I {                                                             \
        pkt.extract(hdr.tcp_opts[I]);                                                         \
        opt_counter.decrement(8w1);                                                           \
        transition opt_tsecr_##V##_##NEXT;                                                    \
    }

#define OPT_TSECR_STATES(V, I, NEXT)                                                          \
    state opt_tsecr_##V##_##I {                                                               \
        transition select(opt_counter.is_zero()) {                                            \
            true: accept;                                                                     \
            default: opt_tsecr_x_##V##_##I;                                                   \
        }                                                                                     \
    }                                                                                         \
    state opt_tsecr_x_##V##_##I {                                                             \
        pkt.extract(hdr.tcp_opts[I]);                                                         \
        opt_counter.decrement(8w1);                                                           \
        transition opt_word_##V##_##NEXT;                                                     \
    }

parser SwitchIngressParser(packet_in pkt,
                           out ingress_headers_t hdr,
                           out ingress_metadata_t ig_md,
                           out ingress_intrinsic_metadata_t ig_intr_md) {
    Checksum() tcp_checksum;
    ParserCounter() opt_counter;

    state start {
        pkt.extract(ig_intr_md);
        pkt.advance(PORT_METADATA_SIZE);
        ig_md.ipv4_options = false;
        ig_md.path = PATH_ROUTE;
        ig_md.vip_hit = false;
        ig_md.guard_drop = false;
        ig_md.synack = false;
        ig_md.l4_update = false;
        ig_md.l4_residual = 0;
        ig_md.headers_len = 0;
        ig_md.pseudo_proto = 0x0006;
        ig_md.synack_tcp_len = 32;
        ig_md.client_addr = 0;
        ig_md.client_port = 0;
        ig_md.vip_addr = 0;
        ig_md.vip_port = 0;
        ig_md.backend_index = 0;
        ig_md.bucket = 0;
        ig_md.cookie_k0 = 0;
        ig_md.cookie_k1 = 0;
        ig_md.cookie_slot = 0;
        ig_md.cookie_keyed = 0;
        ig_md.cookie = 0;
        ig_md.opt_mss_idx = 0;
        ig_md.opt_sack = 0;
        ig_md.opt_has_ws = 0;
        ig_md.opt_ws = 0;
        transition parse_ethernet;
    }

    state parse_ethernet {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            SIP_ETHERTYPE: parse_sip;
            default: accept;
        }
    }

    /* A recirculated cookie SYN-ACK (halfsiphash.p4): the hash state, then the SYN-ACK as control
     * SynAck built it (IPv4 without options, TCP, its 12 option bytes); its TCP checksum is
     * computed fresh on the last pass. SipRecirc drops it unless it came from SIP_RECIRC_PORT. */
    state parse_sip {
        pkt.extract(hdr.sip);
        transition select(hdr.sip.ether_type) {
            ETHERTYPE_IPV4: parse_sip_ipv4;
            default: accept;
        }
    }

    state parse_sip_ipv4 {
        pkt.extract(hdr.ipv4);
        transition select(hdr.ipv4.ihl, hdr.ipv4.protocol) {
            (5, IP_PROTO_TCP): parse_sip_tcp;
            default: accept;
        }
    }

    state parse_sip_tcp {
        pkt.extract(hdr.tcp);
        pkt.extract(hdr.synack_opts);
        transition accept;
    }

    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
        tcp_checksum.subtract({TCP_REWRITTEN_IPV4});
        transition select(hdr.ipv4.ihl, hdr.ipv4.flags, hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (5, 0b000 &&& 0b001, 0, IP_PROTO_TCP): parse_tcp;   /* not a fragment */
            (5, _, _, _): accept;
            default: ipv4_with_options;
        }
    }

    state ipv4_with_options {
        ig_md.ipv4_options = true;
        transition accept;
    }

    state parse_tcp {
        pkt.extract(hdr.tcp);
        tcp_checksum.subtract({TCP_REWRITTEN_TCP});
        tcp_checksum.subtract({hdr.tcp.checksum});
        tcp_checksum.subtract_all_and_deposit(ig_md.l4_residual);
        transition select(hdr.tcp.data_offset) {
            5: tcp_doff_5;
            6: tcp_doff_6;
            7: tcp_doff_7;
            8: tcp_doff_8;
            9: tcp_doff_9;
            10: tcp_doff_10;
            11: tcp_doff_11;
            12: tcp_doff_12;
            13: tcp_doff_13;
            14: tcp_doff_14;
            15: tcp_doff_15;
            default: accept;
        }
    }

    /* Data offset N: the IPv4 + TCP header length, a parser constant (in the MAU, data_offset sits
     * in bits 7..4 of its byte and cannot meet total_len in one ALU operation); a SYN (without
     * ACK) has N - 5 option words. */
    state tcp_doff_5 {
        ig_md.headers_len = 40;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): accept;
            default: accept;
        }
    }

    state tcp_doff_6 {
        ig_md.headers_len = 44;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): opts_1;
            default: accept;
        }
    }

    state tcp_doff_7 {
        ig_md.headers_len = 48;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): opts_2;
            default: accept;
        }
    }

    state tcp_doff_8 {
        ig_md.headers_len = 52;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): opts_3;
            default: accept;
        }
    }

    state tcp_doff_9 {
        ig_md.headers_len = 56;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): opts_4;
            default: accept;
        }
    }

    state tcp_doff_10 {
        ig_md.headers_len = 60;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): opts_5;
            default: accept;
        }
    }

    state tcp_doff_11 {
        ig_md.headers_len = 64;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): opts_6;
            default: accept;
        }
    }

    state tcp_doff_12 {
        ig_md.headers_len = 68;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): opts_7;
            default: accept;
        }
    }

    state tcp_doff_13 {
        ig_md.headers_len = 72;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): opts_8;
            default: accept;
        }
    }

    state tcp_doff_14 {
        ig_md.headers_len = 76;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): opts_9;
            default: accept;
        }
    }

    state tcp_doff_15 {
        ig_md.headers_len = 80;
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): opts_10;
            default: accept;
        }
    }

    state opts_1 {
        opt_counter.set(8w1);
        transition opt_word_0;
    }

    state opts_2 {
        opt_counter.set(8w2);
        transition opt_word_0;
    }

    state opts_3 {
        opt_counter.set(8w3);
        transition opt_word_0;
    }

    state opts_4 {
        opt_counter.set(8w4);
        transition opt_word_0;
    }

    state opts_5 {
        opt_counter.set(8w5);
        transition opt_word_0;
    }

    state opts_6 {
        opt_counter.set(8w6);
        transition opt_word_0;
    }

    state opts_7 {
        opt_counter.set(8w7);
        transition opt_word_0;
    }

    state opts_8 {
        opt_counter.set(8w8);
        transition opt_word_0;
    }

    state opts_9 {
        opt_counter.set(8w9);
        transition opt_word_0;
    }

    state opts_10 {
        opt_counter.set(8w10);
        transition opt_word_0;
    }

    /* Word 0: the MSS word, classified here into the cookie's MSS index (536, 1220, 1440, 1460:
     * the largest not above the client's MSS; the MAU's gateways cannot compare a 16-bit field
     * with these constants), or any word variant a recognises. */
    state opt_word_0 {
        transition select(pkt.lookahead<bit<32>>()) {
            0x02040000 .. 0x020404c3: opt_mss_0_class0;     /* below 1220 */
            0x020404c4 .. 0x0204059f: opt_mss_0_class1;     /* 1220..1439 */
            0x020405a0 .. 0x020405b3: opt_mss_0_class2;     /* 1440..1459 */
            0x02040000 &&& 0xffff0000: opt_mss_0_class3;    /* 1460 and above */
            default: opt_word_a_0;
        }
    }

    state opt_mss_0_class0 {
        pkt.extract(hdr.tcp_opts[0]);
        ig_md.opt_mss_idx = 0;
        opt_counter.decrement(8w1);
        transition opt_word_a_1;
    }

    state opt_mss_0_class1 {
        pkt.extract(hdr.tcp_opts[0]);
        ig_md.opt_mss_idx = 1;
        opt_counter.decrement(8w1);
        transition opt_word_a_1;
    }

    state opt_mss_0_class2 {
        pkt.extract(hdr.tcp_opts[0]);
        ig_md.opt_mss_idx = 2;
        opt_counter.decrement(8w1);
        transition opt_word_a_1;
    }

    state opt_mss_0_class3 {
        pkt.extract(hdr.tcp_opts[0]);
        ig_md.opt_mss_idx = 3;
        opt_counter.decrement(8w1);
        transition opt_word_a_1;
    }

    OPT_WORD_STATES(a, 0, 1, opt_ws_0, opt_ws_0_max)
    OPT_WORD_STATES(a, 1, 2, opt_ws_1, opt_ws_1_max)
    OPT_WORD_STATES(a, 2, 3, opt_ws_2, opt_ws_2_max)
    OPT_WORD_STATES(a, 3, 4, opt_ws_3, opt_ws_3_max)
    OPT_WORD_STATES(a, 4, 5, opt_ws_4, opt_ws_4_max)
    OPT_WORD_STATES(a, 5, 6, opt_ws_5, opt_ws_5_max)
    OPT_WORD_STATES(a, 6, 7, opt_ws_6, opt_ws_6_max)
    OPT_WORD_STATES(a, 7, 8, opt_ws_7, opt_ws_7_max)
    OPT_WORD_STATES(a, 8, 9, opt_ws_8, opt_ws_8_max)
    OPT_WORD_STATES(a, 9, 10, opt_ws_9, opt_ws_9_max)
    OPT_WORD_STATES(b, 1, 2, accept, accept)
    OPT_WORD_STATES(b, 2, 3, accept, accept)
    OPT_WORD_STATES(b, 3, 4, accept, accept)
    OPT_WORD_STATES(b, 4, 5, accept, accept)
    OPT_WORD_STATES(b, 5, 6, accept, accept)
    OPT_WORD_STATES(b, 6, 7, accept, accept)
    OPT_WORD_STATES(b, 7, 8, accept, accept)
    OPT_WORD_STATES(b, 8, 9, accept, accept)
    OPT_WORD_STATES(b, 9, 10, accept, accept)
    OPT_WS_STATE(0, 1)
    OPT_WS_STATE(1, 2)
    OPT_WS_STATE(2, 3)
    OPT_WS_STATE(3, 4)
    OPT_WS_STATE(4, 5)
    OPT_WS_STATE(5, 6)
    OPT_WS_STATE(6, 7)
    OPT_WS_STATE(7, 8)
    OPT_WS_STATE(8, 9)
    OPT_WS_STATE(9, 10)
    OPT_TSVAL_STATES(a, 1, 2)
    OPT_TSVAL_STATES(a, 2, 3)
    OPT_TSVAL_STATES(a, 3, 4)
    OPT_TSVAL_STATES(a, 4, 5)
    OPT_TSVAL_STATES(a, 5, 6)
    OPT_TSVAL_STATES(a, 6, 7)
    OPT_TSVAL_STATES(a, 7, 8)
    OPT_TSVAL_STATES(a, 8, 9)
    OPT_TSVAL_STATES(a, 9, 10)
    OPT_TSECR_STATES(a, 2, 3)
    OPT_TSECR_STATES(a, 3, 4)
    OPT_TSECR_STATES(a, 4, 5)
    OPT_TSECR_STATES(a, 5, 6)
    OPT_TSECR_STATES(a, 6, 7)
    OPT_TSECR_STATES(a, 7, 8)
    OPT_TSECR_STATES(a, 8, 9)
    OPT_TSECR_STATES(a, 9, 10)
    OPT_TSVAL_STATES(b, 1, 2)
    OPT_TSVAL_STATES(b, 2, 3)
    OPT_TSVAL_STATES(b, 3, 4)
    OPT_TSVAL_STATES(b, 4, 5)
    OPT_TSVAL_STATES(b, 5, 6)
    OPT_TSVAL_STATES(b, 6, 7)
    OPT_TSVAL_STATES(b, 7, 8)
    OPT_TSVAL_STATES(b, 8, 9)
    OPT_TSVAL_STATES(b, 9, 10)
    OPT_TSECR_STATES(b, 2, 3)
    OPT_TSECR_STATES(b, 3, 4)
    OPT_TSECR_STATES(b, 4, 5)
    OPT_TSECR_STATES(b, 5, 6)
    OPT_TSECR_STATES(b, 6, 7)
    OPT_TSECR_STATES(b, 7, 8)
    OPT_TSECR_STATES(b, 8, 9)
    OPT_TSECR_STATES(b, 9, 10)

    /* Past the last word (the counter is zero there: at most 10 words). */
    state opt_word_a_10 {
        transition accept;
    }

    state opt_tsval_a_10 {
        transition accept;
    }

    state opt_tsecr_a_10 {
        transition accept;
    }

    state opt_word_b_10 {
        transition accept;
    }

    state opt_tsval_b_10 {
        transition accept;
    }

    state opt_tsecr_b_10 {
        transition accept;
    }
}

control SwitchIngressDeparser(packet_out pkt,
                              inout ingress_headers_t hdr,
                              in ingress_metadata_t ig_md,
                              in ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md) {
    Checksum() ipv4_checksum;
    Checksum() synack_checksum;
    Checksum() tcp_checksum;

    apply {
        hdr.ipv4.hdr_checksum = ipv4_checksum.update({
            hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.total_len,
            hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset, hdr.ipv4.ttl,
            hdr.ipv4.protocol, hdr.ipv4.src_addr, hdr.ipv4.dst_addr});
        if (ig_md.synack) {
            /* Fresh: pseudo header (addresses, protocol, TCP length 32), header, 12 options. */
            hdr.tcp.checksum = synack_checksum.update({
                hdr.ipv4.src_addr, hdr.ipv4.dst_addr, ig_md.pseudo_proto, ig_md.synack_tcp_len,
                hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.seq_no, hdr.tcp.ack_no,
                hdr.tcp.data_offset, hdr.tcp.res, hdr.tcp.flags, hdr.tcp.window,
                hdr.tcp.urgent_ptr,
                hdr.synack_opts.mss, hdr.synack_opts.sack, hdr.synack_opts.nop,
                hdr.synack_opts.wscale, hdr.synack_opts.nops});
        } else if (ig_md.l4_update) {
            /* Incremental: the parser's residual plus the (rewritten) addresses and ports. */
            hdr.tcp.checksum = tcp_checksum.update({TCP_REWRITTEN_FIELDS, ig_md.l4_residual});
        }
        pkt.emit(hdr);
    }
}

#endif
