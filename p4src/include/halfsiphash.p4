/* HalfSipHash-2-4 of the SYN cookie on Tofino 1, spread over recirculation passes (issue 10; the
 * contract: system/switch/README.md "The SYN cookie", reference system/switch/cookie.py).
 *
 * The MAC of 16 message bytes takes 14 SipRounds (4 blocks and the length block, 2 rounds each, then
 * 4 finalisation rounds); one SipRound is 4 dependent ALU steps, i.e. 4 MAU stages. No pipe holds
 * 14 x 4 stages, so the SYN's cookie SYN-ACK carries the hash state in a header (cookie_sip_h,
 * after Ethernet, ether type SIP_ETHERTYPE) and recirculates, the way SmartCookie (USENIX Security
 * 2024) and Yoo & Chen (SPIN 2021) fit HalfSipHash on a Tofino:
 *
 *   ingress, the SYN (control SynAck):   v0..v3 = k0, k1, k0, k1; w0..w4 = m0, m1, m2, m3, 16 << 24;
 *                                        low8; port; pass = 0; out of SIP_RECIRC_PORT
 *   egress pass p = 0 .. SIP_PASSES-1    (control SipPass, on the recirculation port's egress,
 *                                        10 stages as the compiler places them):
 *       p == 0: v2 ^= SIP_C0, v3 ^= SIP_C1 (the key schedule's constants: ingress cannot xor a
 *               constant into a word it copies from a table's action data)
 *       v3 ^= w0;  p == SIP_FINAL_PASS: v2 ^= 0xff
 *       SipRound (4 stages)
 *       SipRound (4 stages);  v0 ^= w0; w0..w4 = w1..w4, 0; pass += 1
 *   ingress, recirculated (control SipRecirc): pass < SIP_PASSES: out of SIP_RECIRC_PORT again;
 *       pass == SIP_PASSES: seq = ((v1 ^ v3) & 0xffffff00) | low8, header removed, out of the SYN's
 *       port, TCP checksum computed fresh
 *
 * Passes 0-4 absorb the 5 blocks (w0 = the block, its 2 compression rounds), pass 5 (SIP_FINAL_PASS)
 * starts the finalisation (v2 ^= 0xff, w0 = 0 by then) and passes 5-6 do its 4 rounds: 7 egress
 * passes, 7 recirculations per answered SYN. Only SYNs to a VIP (answered with a cookie) recirculate;
 * every other packet takes one pass as before.
 *
 * tests/test_p4_halfsiphash.py holds a Python model of exactly this schedule, checked bit for bit
 * against system/switch/cookie.py, and reads the schedule back from this file (a model: no Tofino
 * and no Tofino model runs here).
 *
 * SIP_RECIRC_PORT: a documented constant, 68, pipe 0's recirculation port on Tofino 1 (pipes 1-3
 * have 196, 324, 452). Override with -DSIP_RECIRC_PORT=<port> (another recirculation port, or a
 * front-panel port the control plane puts in loopback mode). A packet that carries the state
 * header but did not come in on that port is dropped: no outside host can feed the hash.
 */
#ifndef _MIRESGA_HALFSIPHASH_P4_
#define _MIRESGA_HALFSIPHASH_P4_

#ifndef SIP_RECIRC_PORT
#define SIP_RECIRC_PORT 68
#endif

const bit<8> SIP_PASSES = 7;            /* egress passes of 2 SipRounds each: 14 SipRounds */
const bit<8> SIP_FINAL_PASS = 5;        /* the pass that starts the finalisation (v2 ^= 0xff) */
const bit<32> SIP_LENGTH_BLOCK = 0x10000000;    /* 16 message bytes: 16 << 24 */
const bit<32> SIP_C0 = 0x6c796765;      /* v2 = k0 ^ SIP_C0 */
const bit<32> SIP_C1 = 0x74656462;      /* v3 = k1 ^ SIP_C1 */

/* One SipRound as 4 MAU steps; each step's operations read the state as the step found it (the
 * rotations are written last so that the adds and xors read the unrotated words), the way the
 * PHV ALUs of one stage work. Rotations: bit slices concatenated (a funnel shift). */
control SipRound(inout cookie_sip_h sip) {
    @hidden action sip_step_1() {
        sip.v0 = sip.v0 + sip.v1;
        sip.v2 = sip.v2 + sip.v3;
        sip.v1 = sip.v1[26:0] ++ sip.v1[31:27];     /* rotl 5 */
        sip.v3 = sip.v3[23:0] ++ sip.v3[31:24];     /* rotl 8 */
    }

    @hidden action sip_step_2() {
        sip.v1 = sip.v1 ^ sip.v0;
        sip.v3 = sip.v3 ^ sip.v2;
        sip.v0 = sip.v0[15:0] ++ sip.v0[31:16];     /* rotl 16 */
    }

    @hidden action sip_step_3() {
        sip.v0 = sip.v0 + sip.v3;
        sip.v2 = sip.v2 + sip.v1;
        sip.v1 = sip.v1[18:0] ++ sip.v1[31:19];     /* rotl 13 */
        sip.v3 = sip.v3[24:0] ++ sip.v3[31:25];     /* rotl 7 */
    }

    @hidden action sip_step_4() {
        sip.v3 = sip.v3 ^ sip.v0;
        sip.v1 = sip.v1 ^ sip.v2;
        sip.v2 = sip.v2[15:0] ++ sip.v2[31:16];     /* rotl 16 */
    }

    apply {
        sip_step_1();
        sip_step_2();
        sip_step_3();
        sip_step_4();
    }
}

/* One egress pass: absorb w0 (or start the finalisation), 2 SipRounds, then the block's closing
 * xor, the shift of the message words and the pass count. */
control SipPass(inout cookie_sip_h sip) {
    SipRound() round_1;
    SipRound() round_2;

    @hidden action sip_init() {
        sip.v2 = sip.v2 ^ SIP_C0;
        sip.v3 = sip.v3 ^ SIP_C1;
    }

    @hidden action sip_absorb() {
        sip.v3 = sip.v3 ^ sip.w0;
    }

    @hidden action sip_finalise() {
        sip.v2 = sip.v2 ^ 0xff;
    }

    @hidden action sip_close() {
        sip.v0 = sip.v0 ^ sip.w0;
        sip.w0 = sip.w1;
        sip.w1 = sip.w2;
        sip.w2 = sip.w3;
        sip.w3 = sip.w4;
        sip.w4 = 0;
        sip.pass = sip.pass + 1;
    }

    apply {
        if (sip.pass == 0) {
            sip_init();
        }
        sip_absorb();
        if (sip.pass == SIP_FINAL_PASS) {
            sip_finalise();
        }
        round_1.apply(sip);
        round_2.apply(sip);
        sip_close();
    }
}

/* Ingress, a packet carrying the state header: recirculate again, or write the cookie and send
 * the SYN-ACK out of the port the SYN came in on (its TCP checksum computed by the deparser). */
control SipRecirc(inout ingress_headers_t hdr,
                  inout ingress_metadata_t ig_md,
                  in ingress_intrinsic_metadata_t ig_intr_md,
                  inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                  inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
    @hidden action sip_output() {
        hdr.tcp.seq_no = hdr.sip.v1 ^ hdr.sip.v3;       /* the MAC; its low byte is replaced */
    }

    @hidden action sip_mask() {
        hdr.tcp.seq_no = hdr.tcp.seq_no & 0xffffff00;
    }

    @hidden action sip_deliver() {
        hdr.tcp.seq_no = hdr.tcp.seq_no | (bit<32>)hdr.sip.low8;
        hdr.ethernet.ether_type = hdr.sip.ether_type;
        ig_tm_md.ucast_egress_port = hdr.sip.port;
        hdr.sip.setInvalid();
        ig_md.synack = true;
    }

    apply {
        if (ig_intr_md.ingress_port != SIP_RECIRC_PORT) {
            ig_dprsr_md.drop_ctl = 0x1;     /* the state header from outside: never */
        } else if (hdr.sip.pass == SIP_PASSES) {
            sip_output();
            sip_mask();
            sip_deliver();
        } else {
            ig_tm_md.ucast_egress_port = SIP_RECIRC_PORT;
        }
    }
}

/* Egress of pipelines miresga and switch_only: parse Ethernet and the state header, run a pass. */
struct cookie_egress_headers_t {
    ethernet_h ethernet;
    cookie_sip_h sip;
}

struct cookie_egress_metadata_t {}

parser CookieEgressParser(packet_in pkt,
                          out cookie_egress_headers_t hdr,
                          out cookie_egress_metadata_t eg_md,
                          out egress_intrinsic_metadata_t eg_intr_md) {
    state start {
        pkt.extract(eg_intr_md);
        pkt.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            SIP_ETHERTYPE: parse_sip;
            default: accept;
        }
    }

    state parse_sip {
        pkt.extract(hdr.sip);
        transition accept;
    }
}

control CookieEgress(inout cookie_egress_headers_t hdr,
                     inout cookie_egress_metadata_t eg_md,
                     in egress_intrinsic_metadata_t eg_intr_md,
                     in egress_intrinsic_metadata_from_parser_t eg_prsr_md,
                     inout egress_intrinsic_metadata_for_deparser_t eg_dprsr_md,
                     inout egress_intrinsic_metadata_for_output_port_t eg_oport_md) {
    SipPass() sip_pass;

    apply {
        if (hdr.sip.isValid()) {
            sip_pass.apply(hdr.sip);
        }
    }
}

control CookieEgressDeparser(packet_out pkt,
                             inout cookie_egress_headers_t hdr,
                             in cookie_egress_metadata_t eg_md,
                             in egress_intrinsic_metadata_for_deparser_t eg_dprsr_md) {
    apply {
        pkt.emit(hdr);
    }
}

#endif
