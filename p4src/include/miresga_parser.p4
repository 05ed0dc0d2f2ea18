/* TNA ingress parser and deparser of pipeline miresga (the egress ones are shared: parser.p4).
 *
 * TCP is parsed in IPv4 without options and not fragmented. The options of a SYN (without ACK)
 * are walked generically, bounded by a ParserCounter loaded with the option length: any order,
 * NOP, EOL (the rest is padding), MSS / window scale / SACK-permitted captured into metadata,
 * other kinds skipped by their length (2..12 bytes; a longer or malformed option stops the walk:
 * what was found so far counts). Every byte walked is extracted into hdr.tcp_opts, so a SYN that
 * the switch does not answer leaves byte for byte as it came.
 *
 * The TCP checksum residual (checksum minus addresses and ports) is deposited for the incremental
 * update of the rewrite paths; the SYN-ACK's checksum is computed fresh over its 32-byte header.
 * TCP_REWRITTEN_FIELDS lists the header fields a rewrite may change (left out of the residual,
 * added back by the deparser); pipeline switch_only (p4src/switch_only.p4) defines it with seq and
 * ack too before including this file.
 */
#ifndef _MIRESGA_MIRESGA_PARSER_P4_
#define _MIRESGA_MIRESGA_PARSER_P4_

#ifndef TCP_REWRITTEN_FIELDS
#define TCP_REWRITTEN_FIELDS hdr.ipv4.src_addr, hdr.ipv4.dst_addr, hdr.tcp.src_port, hdr.tcp.dst_port
#endif

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
        ig_md.synack = false;
        ig_md.l4_update = false;
        ig_md.l4_residual = 0;
        ig_md.tcp_hdr_len = 0;
        ig_md.ip_payload_len = 0;
        ig_md.pseudo_proto = 0x0006;
        ig_md.synack_tcp_len = 32;
        ig_md.client_addr = 0;
        ig_md.client_port = 0;
        ig_md.vip_addr = 0;
        ig_md.vip_port = 0;
        ig_md.backend_index = 0;
        ig_md.bucket = 0;
        ig_md.secret = 0;
        ig_md.cookie = 0;
        ig_md.opt_mss = 0;
        ig_md.opt_sack = 0;
        ig_md.opt_has_ws = 0;
        ig_md.opt_ws = 0;
        transition parse_ethernet;
    }

    state parse_ethernet {
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            default: accept;
        }
    }

    state parse_ipv4 {
        pkt.extract(hdr.ipv4);
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
        tcp_checksum.subtract({TCP_REWRITTEN_FIELDS});
        tcp_checksum.subtract({hdr.tcp.checksum});
        tcp_checksum.subtract_all_and_deposit(ig_md.l4_residual);
        transition select(hdr.tcp.flags) {
            TCP_FLAG_SYN &&& (TCP_FLAG_SYN | TCP_FLAG_ACK): parse_syn_options;
            default: accept;
        }
    }

    state parse_syn_options {
        transition select(hdr.tcp.data_offset) {
            6: opts_4;
            7: opts_8;
            8: opts_12;
            9: opts_16;
            10: opts_20;
            11: opts_24;
            12: opts_28;
            13: opts_32;
            14: opts_36;
            15: opts_40;
            default: accept;
        }
    }

    state opts_4 {
        opt_counter.set(8w4);
        transition parse_opt;
    }

    state opts_8 {
        opt_counter.set(8w8);
        transition parse_opt;
    }

    state opts_12 {
        opt_counter.set(8w12);
        transition parse_opt;
    }

    state opts_16 {
        opt_counter.set(8w16);
        transition parse_opt;
    }

    state opts_20 {
        opt_counter.set(8w20);
        transition parse_opt;
    }

    state opts_24 {
        opt_counter.set(8w24);
        transition parse_opt;
    }

    state opts_28 {
        opt_counter.set(8w28);
        transition parse_opt;
    }

    state opts_32 {
        opt_counter.set(8w32);
        transition parse_opt;
    }

    state opts_36 {
        opt_counter.set(8w36);
        transition parse_opt;
    }

    state opts_40 {
        opt_counter.set(8w40);
        transition parse_opt;
    }

    state parse_opt {
        transition select(opt_counter.is_zero(), opt_counter.is_negative(), pkt.lookahead<bit<8>>()) {
            (true, _, _): accept;
            (_, true, _): accept;
            (false, false, 0): opt_eol;
            (false, false, 1): opt_nop;
            default: opt_kind_len;
        }
    }

    state opt_eol {
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w1);
        transition opt_padding;
    }

    state opt_padding {
        transition select(opt_counter.is_zero()) {
            true: accept;
            default: opt_padding_byte;
        }
    }

    state opt_padding_byte {
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w1);
        transition opt_padding;
    }

    state opt_nop {
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w1);
        transition parse_opt;
    }

    state opt_kind_len {
        transition select(pkt.lookahead<bit<16>>()) {
            0x0204: opt_mss;
            0x0303: opt_ws;
            0x0402: opt_sack;
            0x0002 &&& 0x00ff: opt_skip2;
            0x0003 &&& 0x00ff: opt_skip3;
            0x0004 &&& 0x00ff: opt_skip4;
            0x0005 &&& 0x00ff: opt_skip5;
            0x0006 &&& 0x00ff: opt_skip6;
            0x0007 &&& 0x00ff: opt_skip7;
            0x0008 &&& 0x00ff: opt_skip8;
            0x0009 &&& 0x00ff: opt_skip9;
            0x000a &&& 0x00ff: opt_skip10;
            0x000b &&& 0x00ff: opt_skip11;
            0x000c &&& 0x00ff: opt_skip12;
            default: accept;
        }
    }

    state opt_mss {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        ig_md.opt_mss[15:8] = hdr.tcp_opts.last.value;
        pkt.extract(hdr.tcp_opts.next);
        ig_md.opt_mss[7:0] = hdr.tcp_opts.last.value;
        opt_counter.decrement(8w4);
        transition parse_opt;
    }

    state opt_ws {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        ig_md.opt_ws = hdr.tcp_opts.last.value;
        ig_md.opt_has_ws = 1;
        opt_counter.decrement(8w3);
        transition parse_opt;
    }

    state opt_sack {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        ig_md.opt_sack = 1;
        opt_counter.decrement(8w2);
        transition parse_opt;
    }

    state opt_skip2 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w2);
        transition parse_opt;
    }

    state opt_skip3 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w3);
        transition parse_opt;
    }

    state opt_skip4 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w4);
        transition parse_opt;
    }

    state opt_skip5 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w5);
        transition parse_opt;
    }

    state opt_skip6 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w6);
        transition parse_opt;
    }

    state opt_skip7 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w7);
        transition parse_opt;
    }

    state opt_skip8 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w8);
        transition parse_opt;
    }

    state opt_skip9 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w9);
        transition parse_opt;
    }

    state opt_skip10 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w10);
        transition parse_opt;
    }

    state opt_skip11 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w11);
        transition parse_opt;
    }

    state opt_skip12 {
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        pkt.extract(hdr.tcp_opts.next);
        opt_counter.decrement(8w12);
        transition parse_opt;
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
