/* Control SynAck: the switch's cookie SYN-ACK (docs/miresga-datapath.md), shared by the controls
 * Miresga (miresga_control.p4) and SwitchOnly (switch_only_control.p4). The caller has set
 * ig_md.client_addr/client_port/vip_addr/vip_port and ig_md.cookie_k0/k1/slot (its syn_cookie
 * table's default action, a key that is not 0); the parser has captured the SYN's options (miresga_parser.p4). The SYN is
 * rewritten in place into the SYN-ACK, sent back out of the ingress port; the deparser computes its
 * TCP checksum fresh (ig_md.synack).
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

    /* NOT YET THE PRF (issue 10, see system/switch/README.md "The SYN cookie", "On a Tofino"): the
     * cookie's layout, key, slot and authenticated low bits are the reference's, but the 24 MAC
     * bits come from the Tofino CRC32 hash unit over the same input, not from HalfSipHash-2-4,
     * which needs 14 SipRounds (4 dependent ALU steps each) and more MAU stages than one pass has:
     * the multi-pass (recirculation) form SmartCookie uses is still to be written. */
    Hash<bit<32>>(HashAlgorithm_t.CRC32) cookie_hash;

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
        hdr.tcp.seq_no = ig_md.cookie;
        hdr.tcp.data_offset = 8;
        hdr.tcp.res = 0;
        hdr.tcp.flags = TCP_FLAG_SYN | TCP_FLAG_ACK;
        hdr.tcp.window = 65535;
        hdr.tcp.urgent_ptr = 0;
        hdr.synack_opts.setValid();
        hdr.synack_opts.mss = SYNACK_OPT_MSS;
        hdr.synack_opts.nop = 0x01;
        hdr.synack_opts.nops = 0x0101;
        ig_tm_md.ucast_egress_port = ig_intr_md.ingress_port;
        ig_md.synack = true;
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
        /* Cookie: MAC(key; m0 client, m1 vip, m2 ports, m3 slot ++ low bits), slot parity, low bits. */
        bit<32> mac = cookie_hash.get({ig_md.cookie_k0, ig_md.cookie_k1, ig_md.client_addr, ig_md.vip_addr,
                                       ig_md.client_port, ig_md.vip_port, ig_md.cookie_slot[23:0],
                                       1w0, ig_md.opt_mss_idx, ig_md.opt_sack, wscale_code});
        ig_md.cookie = mac[31:8] ++ ig_md.cookie_slot[0:0] ++ ig_md.opt_mss_idx ++ ig_md.opt_sack ++ wscale_code;
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
