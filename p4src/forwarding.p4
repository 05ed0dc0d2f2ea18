/* Pipeline "forwarding": L3 forwarding only (used by the software baselines).
 * TNA (Tofino 1); compile with bf-p4c --target tofino --arch tna (see README.md). */
#include <core.p4>
#include <tna.p4>

#include "include/sizes.p4"
#include "include/headers.p4"
#include "include/parser.p4"
#include "include/forwarding.p4"

control SwitchIngress(inout ingress_headers_t hdr,
                      inout ingress_metadata_t ig_md,
                      in ingress_intrinsic_metadata_t ig_intr_md,
                      in ingress_intrinsic_metadata_from_parser_t ig_prsr_md,
                      inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                      inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {
    Forwarding() forwarding;

    apply {
        forwarding.apply(hdr, ig_md, ig_dprsr_md, ig_tm_md);
    }
}

control SwitchEgress(inout egress_headers_t hdr,
                     inout egress_metadata_t eg_md,
                     in egress_intrinsic_metadata_t eg_intr_md,
                     in egress_intrinsic_metadata_from_parser_t eg_prsr_md,
                     inout egress_intrinsic_metadata_for_deparser_t eg_dprsr_md,
                     inout egress_intrinsic_metadata_for_output_port_t eg_oport_md) {
    apply {}
}

Pipeline(SwitchIngressParser(),
         SwitchIngress(),
         SwitchIngressDeparser(),
         SwitchEgressParser(),
         SwitchEgress(),
         SwitchEgressDeparser()) pipe;

Switch(pipe) main;
