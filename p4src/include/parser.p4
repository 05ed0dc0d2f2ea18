/* TNA parsers and deparsers shared by the Miresga pipelines. */
#ifndef _MIRESGA_PARSER_P4_
#define _MIRESGA_PARSER_P4_

parser SwitchIngressParser(packet_in pkt,
                           out ingress_headers_t hdr,
                           out ingress_metadata_t ig_md,
                           out ingress_intrinsic_metadata_t ig_intr_md) {
    state start {
        pkt.extract(ig_intr_md);
        /* Port metadata (phase 0) is not used: skip it. */
        pkt.advance(PORT_METADATA_SIZE);
        ig_md.ipv4_options = false;
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
        transition select(hdr.ipv4.ihl) {
            5: accept;
            default: ipv4_with_options;
        }
    }

    state ipv4_with_options {
        ig_md.ipv4_options = true;
        transition accept;
    }
}

control SwitchIngressDeparser(packet_out pkt,
                              inout ingress_headers_t hdr,
                              in ingress_metadata_t ig_md,
                              in ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md) {
    Checksum() ipv4_checksum;

    apply {
        /* Full recomputation: Tofino's deparser checksum unit does what the emulated target does
         * incrementally (RFC 1624). */
        hdr.ipv4.hdr_checksum = ipv4_checksum.update({
            hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.total_len,
            hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset, hdr.ipv4.ttl,
            hdr.ipv4.protocol, hdr.ipv4.src_addr, hdr.ipv4.dst_addr});
        pkt.emit(hdr);
    }
}

parser SwitchEgressParser(packet_in pkt,
                          out egress_headers_t hdr,
                          out egress_metadata_t eg_md,
                          out egress_intrinsic_metadata_t eg_intr_md) {
    state start {
        pkt.extract(eg_intr_md);
        transition accept;
    }
}

control SwitchEgressDeparser(packet_out pkt,
                             inout egress_headers_t hdr,
                             in egress_metadata_t eg_md,
                             in egress_intrinsic_metadata_for_deparser_t eg_dprsr_md) {
    apply {
        pkt.emit(hdr);
    }
}

#endif
