/* Pipeline "miresga": the Miresga switch data plane (docs/miresga-datapath.md) on TNA (Tofino 1);
 * compile with bf-p4c --target tofino --arch tna (see README.md). Emulated twin:
 * system/switch/bpf/miresga.c.
 *
 * Reuses the shared includes: headers.p4 and parser.p4 are included with their ingress types and
 * parser/deparser renamed (they describe Ethernet/IPv4 only), miresga_headers.p4 then declares
 * ingress_headers_t/ingress_metadata_t with TCP, and control Forwarding (forwarding.p4, table
 * route) is compiled over those. The egress parser/deparser are parser.p4's.
 */
#include <core.p4>
#include <tna.p4>

#include "include/sizes.p4"
#include "include/miresga_sizes.p4"

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

#include "include/miresga_headers.p4"
#include "include/miresga_parser.p4"
#include "include/forwarding.p4"
#include "include/halfsiphash.p4"
#include "include/synack.p4"
#include "include/miresga_control.p4"

control SwitchIngress(inout ingress_headers_t hdr,
                      inout ingress_metadata_t ig_md,
                      in ingress_intrinsic_metadata_t ig_intr_md,
                      in ingress_intrinsic_metadata_from_parser_t ig_prsr_md,
                      inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                      inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
    Miresga() miresga;
    Forwarding() forwarding;
    SipRecirc() sip_recirc;

    apply {
        if (hdr.sip.isValid()) {
            sip_recirc.apply(hdr, ig_md, ig_intr_md, ig_dprsr_md, ig_tm_md);   /* a cookie's pass */
        } else {
            miresga.apply(hdr, ig_md, ig_intr_md, ig_dprsr_md, ig_tm_md);
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
