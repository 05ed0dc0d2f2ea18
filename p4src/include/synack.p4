/* Control SynAck: the switch's cookie SYN-ACK (docs/miresga-datapath.md), shared by the controls
 * Miresga (miresga_control.p4) and SwitchOnly (switch_only_control.p4). The caller has set
 * ig_md.client_addr/client_port/vip_addr/vip_port and ig_md.cookie_k0/k1/slot (its syn_cookie
 * table's default action, a key that is not 0); the parser has captured the SYN's options (miresga_parser.p4). The SYN is
 * rewritten in place into the SYN-ACK and sent to the recirculation port with the HalfSipHash state
 * (halfsiphash.p4: SIP_PASSES egress passes compute the MAC, control SipRecirc then writes the
 * cookie into seq and sends the SYN-ACK back out of the SYN's ingress port, its TCP checksum
 * computed fresh by the deparser, ig_md.synack).
 *
 * Constructor parameter offer_sack: false for the switch-only baseline, which never offers SACK
 * (docs/switch-only-datapath.md): the cookie's sack bit is 0 and option bytes 4-5 are NOP NOP.
 * The eBPF twin is system/switch/bpf/miresga_synack.h (SYNACK_NO_SACK).
 */
#ifndef _MIRESGA_SYNACK_P4_
#define _MIRESGA_SYNACK_P4_

const bit<32> SYNACK_OPT_MSS = 0x020405b4;        /* kind 2, len 4, SWITCH_MSS 1460 */
const bit<24> SYNACK_OPT_WSCALE = 0x030307;       /* kind 3, len 3, SWITCH_WSCALE 7 */

control SynAck(inout ingress_headers_t hdr,
               inout ingress_metadata_t ig_md,
               in ingress_intrinsic_metadata_t ig_intr_md,
               inout ingress_intrinsic_metadata_for_tm_t ig_tm_md)
              (bool offer_sack) {

    /* Concatenations of fields from several PHV containers through the hash unit's identity
     * function (an ALU operation takes at most two PHV sources): the first field is the most
     * significant, as in the cookie contract's m3 and low byte. */
    Hash<bit<32>>(HashAlgorithm_t.IDENTITY) m3_concat;
    Hash<bit<8>>(HashAlgorithm_t.IDENTITY) low8_concat;

    bit<4> wscale_code = 15;

    @hidden action build_synack() {
        mac_addr_t mac = hdr.ethernet.dst_addr;
        hdr.ethernet.dst_addr = hdr.ethernet.src_addr;
        hdr.ethernet.src_addr = mac;    /* the switch port's MAC the client addressed */
        hdr.ipv4.dst_addr = hdr.ipv4.src_addr;
        hdr.ipv4.src_addr = ig_md.vip_addr;
        hdr.ipv4.diffserv = 0;
        hdr.ipv4.total_len = 52;
        hdr.ipv4.identification = 0;
        hdr.ipv4.flags = 0b010;         /* DF */
        hdr.ipv4.frag_offset = 0;
        hdr.ipv4.ttl = 64;
        hdr.tcp.dst_port = hdr.tcp.src_port;
        hdr.tcp.src_port = ig_md.vip_port;
        hdr.tcp.ack_no = hdr.tcp.seq_no + 1;
        hdr.tcp.seq_no = 0;             /* the cookie, on the last pass (SipRecirc) */
        hdr.tcp.data_offset = 8;
        hdr.tcp.res = 0;
        hdr.tcp.flags = TCP_FLAG_SYN | TCP_FLAG_ACK;
        hdr.tcp.window = 65535;
        hdr.tcp.urgent_ptr = 0;
        hdr.synack_opts.setValid();
        hdr.synack_opts.mss = SYNACK_OPT_MSS;
        hdr.synack_opts.nop = 0x01;
        hdr.synack_opts.nops = 0x0101;
        ig_tm_md.ucast_egress_port = SIP_RECIRC_PORT;     /* the cookie's passes first */
    }

    @hidden action sip_m3() {
        hdr.sip.w3 = m3_concat.get({ig_md.cookie_slot[23:0], 1w0, ig_md.opt_mss_idx, ig_md.opt_sack,
                                    wscale_code});
    }

    @hidden action sip_low8() {
        hdr.sip.low8 = low8_concat.get({ig_md.cookie_slot[0:0], ig_md.opt_mss_idx, ig_md.opt_sack,
                                        wscale_code});
    }

    @hidden action drop_client_options() {
        hdr.tcp_opts[0].setInvalid();
        hdr.tcp_opts[1].setInvalid();
        hdr.tcp_opts[2].setInvalid();
        hdr.tcp_opts[3].setInvalid();
        hdr.tcp_opts[4].setInvalid();
        hdr.tcp_opts[5].setInvalid();
        hdr.tcp_opts[6].setInvalid();
        hdr.tcp_opts[7].setInvalid();
        hdr.tcp_opts[8].setInvalid();
        hdr.tcp_opts[9].setInvalid();
    }

    apply {
        if (!offer_sack) {
            ig_md.opt_sack = 0;         /* never offered: cookie bit 0, options NOP NOP */
        }
        if (ig_md.opt_has_ws == 1) {
            wscale_code = ig_md.opt_ws;         /* the parser capped it at 14 */
        }
        /* Cookie: HalfSipHash-2-4(key; m0 client, m1 vip, m2 ports, m3 slot ++ low bits) over
         * SIP_PASSES recirculation passes (halfsiphash.p4); the last writes seq. Here the state
         * header: key schedule, message words, the cookie's low byte, the port to answer on. */
        hdr.sip.setValid();
        hdr.sip.ether_type = ETHERTYPE_IPV4;
        hdr.ethernet.ether_type = SIP_ETHERTYPE;
        hdr.sip.pass = 0;
        hdr.sip.pad = 0;
        hdr.sip.port = ig_intr_md.ingress_port;
        hdr.sip.v0 = ig_md.cookie_k0;
        hdr.sip.v1 = ig_md.cookie_k1;
        hdr.sip.v2 = ig_md.cookie_k0;       /* ^ SIP_C0 on egress pass 0 (one PHV source here) */
        hdr.sip.v3 = ig_md.cookie_k1;       /* ^ SIP_C1 on egress pass 0 */
        hdr.sip.w0 = ig_md.client_addr;
        hdr.sip.w1 = ig_md.vip_addr;
        hdr.sip.w2 = ig_md.client_port ++ ig_md.vip_port;
        sip_m3();
        sip_low8();
        hdr.sip.w4 = SIP_LENGTH_BLOCK;
        build_synack();
        drop_client_options();
        if (ig_md.opt_sack == 1) {
            hdr.synack_opts.sack = 0x0402;
        } else {
            hdr.synack_opts.sack = 0x0101;
        }
        if (ig_md.opt_has_ws == 1) {
            hdr.synack_opts.wscale = SYNACK_OPT_WSCALE;
        } else {
            hdr.synack_opts.wscale = 0x010101;
        }
    }
}

#endif
