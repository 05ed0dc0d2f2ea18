/* Control Forwarding: L3 forwarding with table route (LPM on the IPv4 destination).
 * Mirrored by the emulated target in system/switch/bpf/forwarding.h. */
#ifndef _MIRESGA_FORWARDING_P4_
#define _MIRESGA_FORWARDING_P4_

control Forwarding(inout ingress_headers_t hdr,
                   in ingress_metadata_t ig_md,
                   inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                   inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {

    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) route_counter;

    @id(0x01000001)
    action forward(PortId_t port, mac_addr_t smac, mac_addr_t dmac) {
        ig_tm_md.ucast_egress_port = port;
        hdr.ethernet.src_addr = smac;
        hdr.ethernet.dst_addr = dmac;
        hdr.ipv4.ttl = hdr.ipv4.ttl - 1;
        route_counter.count();
    }

    @id(0x01000002)
    action drop() {
        ig_dprsr_md.drop_ctl = 0x1;
        route_counter.count();
    }

    @id(0x02000001)
    table route {
        key = {
            hdr.ipv4.dst_addr: lpm @name("dst_addr");
        }
        actions = {
            forward;
            drop;
        }
        const default_action = drop();
        counters = route_counter;
        size = ROUTE_TABLE_SIZE;
    }

    apply {
        /* Non-IPv4 (ARP included: hosts use static neighbours), IPv4 with options and TTL <= 1
         * are dropped; the emulated target counts them per reason. */
        if (!hdr.ipv4.isValid() || ig_md.ipv4_options || hdr.ipv4.ttl <= 1) {
            ig_dprsr_md.drop_ctl = 0x1;
        } else {
            route.apply();
        }
    }
}

#endif
