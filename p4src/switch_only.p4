/* Pipeline "switch_only": the switch-only baseline's data plane (docs/switch-only-datapath.md) on
 * TNA (Tofino 1); compile with bf-p4c --target tofino --arch tna (see README.md). Emulated twin:
 * system/switch/bpf/switch_only.c.
 *
 * Built like p4src/miresga.p4 from the shared includes: headers.p4 and parser.p4 with their ingress
 * types and parser/deparser renamed, miresga_headers.p4 (ingress headers and metadata with TCP),
 * miresga_parser.p4 (ingress parser/deparser; TCP_REWRITTEN_TCP adds seq and ack to the fields
 * the incremental TCP checksum update covers), control Forwarding (table route), control SynAck
 * (the cookie SYN-ACK, here without SACK) and control SwitchOnly (switch_only_control.p4).
 */
#include <core.p4>
#include <tna.p4>

#include "include/sizes.p4"
#include "include/miresga_sizes.p4"
#include "include/switch_only_sizes.p4"

#define ingress_headers_t forwarding_ingress_headers_t
#define ingress_metadata_t forwarding_ingress_metadata_t
#define SwitchIngressParser ForwardingIngressParser
#define SwitchIngressDeparser ForwardingIngressDeparser
#include "include/headers.p4"
#include "include/parser.p4"
#undef ingress_headers_t
#undef ingress_metadata_t
#undef SwitchIngressParser
#undef SwitchIngressDeparser

/* conn_in rewrites the destination and ack, conn_out the source and seq: all leave the residual. */
#define TCP_REWRITTEN_TCP hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.seq_no, hdr.tcp.ack_no

#include "include/miresga_headers.p4"
#include "include/miresga_parser.p4"
#include "include/forwarding.p4"
#include "include/halfsiphash.p4"
#include "include/synack.p4"
#include "include/switch_only_control.p4"

control SwitchIngress(inout ingress_headers_t hdr,
                      inout ingress_metadata_t ig_md,
                      in ingress_intrinsic_metadata_t ig_intr_md,
                      in ingress_intrinsic_metadata_from_parser_t ig_prsr_md,
                      inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                      inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
    SwitchOnly() switch_only;
    Forwarding() forwarding;
    SipRecirc() sip_recirc;

    apply {
        if (hdr.sip.isValid()) {
            sip_recirc.apply(hdr, ig_md, ig_intr_md, ig_dprsr_md, ig_tm_md);   /* a cookie's pass */
        } else {
            switch_only.apply(hdr, ig_md, ig_intr_md, ig_dprsr_md, ig_tm_md);
            if (ig_md.path == PATH_ROUTE && !ig_md.guard_drop) {   /* unless the guard dropped it */
                forwarding.apply(hdr, ig_md, ig_dprsr_md, ig_tm_md);
            }
        }
    }
}

Pipeline(SwitchIngressParser(),
         SwitchIngress(),
         SwitchIngressDeparser(),
         CookieEgressParser(),
         CookieEgress(),
         CookieEgressDeparser()) pipe;

Switch(pipe) main;
