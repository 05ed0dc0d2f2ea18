/* Control Miresga (docs/miresga-datapath.md): the tables vip, backends, frontend_bucket, offload,
 * backend_by_index, syn_cookie and the back-end guard's protected_hosts and trusted_ports, the SYN-ACK with its cookie, and the offload rewrites. It sets
 * ig_md.path; SwitchIngress (p4src/miresga.p4) applies control Forwarding when it is PATH_ROUTE.
 * The SYN-ACK itself is control SynAck (synack.p4, shared with switch_only), offering SACK.
 * The emulated target's twin is system/switch/bpf/miresga.c. Ids: tables 0x0200001x, actions
 * 0x010000xx (from 0x11), direct counters 0x1300001x.
 */
#ifndef _MIRESGA_MIRESGA_CONTROL_P4_
#define _MIRESGA_MIRESGA_CONTROL_P4_

control Miresga(inout ingress_headers_t hdr,
                inout ingress_metadata_t ig_md,
                in ingress_intrinsic_metadata_t ig_intr_md,
                inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {

    /* zlib's CRC32 (docs/miresga-datapath.md): reflected 0x04C11DB7, init/xor 0xFFFFFFFF. */
    Hash<bit<32>>(HashAlgorithm_t.CRC32) bucket_hash;
    SynAck(true) synack;

    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) vip_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) backends_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) frontend_bucket_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) offload_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) backend_by_index_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) protected_hosts_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) trusted_ports_counter;

    /* --- vip: (dst IP, dst port) -> client -> VIP ---------------------------------------- */
    @id(0x01000011)
    action mark_vip() {
        ig_md.vip_hit = true;
        vip_counter.count();
    }

    @id(0x01000012)
    action vip_miss() {
        vip_counter.count();
    }

    @id(0x02000011)
    table vip {
        key = {
            hdr.ipv4.dst_addr: exact @name("dst_addr");
            hdr.tcp.dst_port: exact @name("dst_port");
        }
        actions = {
            mark_vip;
            @defaultonly vip_miss;
        }
        const default_action = vip_miss();
        counters = vip_counter;
        size = VIP_TABLE_SIZE;
    }

    /* --- backends: (src IP, src port) -> back-end -> client, and its VIP endpoint ------------ */
    @id(0x01000013)
    action mark_backend(ipv4_addr_t vip_addr, bit<16> vip_port) {
        ig_md.vip_addr = vip_addr;
        ig_md.vip_port = vip_port;
        backends_counter.count();
    }

    @id(0x01000014)
    action backends_miss() {
        backends_counter.count();
    }

    @id(0x02000012)
    table backends {
        key = {
            hdr.ipv4.src_addr: exact @name("src_addr");
            hdr.tcp.src_port: exact @name("src_port");
        }
        actions = {
            mark_backend;
            @defaultonly backends_miss;
        }
        const default_action = backends_miss();
        counters = backends_counter;
        size = BACKENDS_TABLE_SIZE;
    }

    /* --- frontend_bucket: CRC32(client ip ++ port) mod N -> front-end ------------------------ */
    @id(0x01000015)
    action to_frontend(PortId_t port, mac_addr_t dmac) {
        ig_tm_md.ucast_egress_port = port;
        hdr.ethernet.dst_addr = dmac;
        frontend_bucket_counter.count();
    }

    @id(0x01000016)
    action frontend_bucket_drop() {
        ig_dprsr_md.drop_ctl = 0x1;
        frontend_bucket_counter.count();
    }

    @id(0x02000013)
    table frontend_bucket {
        key = {
            ig_md.bucket: exact @name("bucket");
        }
        actions = {
            to_frontend;
            @defaultonly frontend_bucket_drop;
        }
        const default_action = frontend_bucket_drop();
        counters = frontend_bucket_counter;
        size = FRONTEND_BUCKET_TABLE_SIZE;
    }

    /* --- offload: (client IP, client port) -> back-end index (front-ends, at run time) ------ */
    @id(0x01000017)
    action to_backend(bit<16> index) {
        ig_md.backend_index = index;
        offload_counter.count();
    }

    @id(0x01000018)
    action offload_miss() {
        offload_counter.count();
    }

    @id(0x02000014)
    table offload {
        key = {
            ig_md.client_addr: exact @name("client_addr");
            ig_md.client_port: exact @name("client_port");
        }
        actions = {
            to_backend;
            @defaultonly offload_miss;
        }
        const default_action = offload_miss();
        counters = offload_counter;
        size = OFFLOAD_TABLE_SIZE;
    }

    /* --- backend_by_index: index -> the back-end's port, MAC, address, TCP port -------------- */
    @id(0x01000019)
    action set_backend(PortId_t port, mac_addr_t dmac, ipv4_addr_t dst_addr, bit<16> dst_port) {
        ig_tm_md.ucast_egress_port = port;
        hdr.ethernet.dst_addr = dmac;
        hdr.ipv4.dst_addr = dst_addr;
        hdr.tcp.dst_port = dst_port;
        ig_md.l4_update = true;
        backend_by_index_counter.count();
    }

    @id(0x0100001a)
    action backend_by_index_miss() {
        backend_by_index_counter.count();
    }

    @id(0x02000015)
    table backend_by_index {
        key = {
            ig_md.backend_index: exact @name("index");
        }
        actions = {
            set_backend;
            @defaultonly backend_by_index_miss;
        }
        const default_action = backend_by_index_miss();
        counters = backend_by_index_counter;
        size = BACKEND_BY_INDEX_TABLE_SIZE;
    }

    /* --- syn_cookie: keyless; the control plane writes the cookie key and slot (a key of 0, as
     * before its first write, answers no SYN: the SYN is dropped) ----------------------------- */
    @id(0x0100001b)
    action set_cookie_secret(bit<64> key, bit<32> slot) {
        ig_md.cookie_k0 = key[31:0];
        ig_md.cookie_k1 = key[63:32];
        ig_md.cookie_slot = slot;
    }

    @hidden action cookie_key_written() {
        ig_md.cookie_keyed = ig_md.cookie_k0 | ig_md.cookie_k1;
    }

    @id(0x02000016)
    table syn_cookie {
        actions = {
            @defaultonly set_cookie_secret;
        }
        default_action = set_cookie_secret(0, 0);
        size = SYN_COOKIE_TABLE_SIZE;
    }

    /* --- the back-end guard (docs/miresga-datapath.md "The guard"): protected_hosts, a back-end's
     * data address; trusted_ports, the ports allowed to send to one. Applied to IPv4 that missed
     * vip; a protected destination from a port trusted_ports misses is dropped ---------------- */
    @id(0x0100001c)
    action mark_protected() {
        protected_hosts_counter.count();
    }

    @id(0x0100001d)
    action protected_hosts_miss() {
        protected_hosts_counter.count();
    }

    @id(0x02000017)
    table protected_hosts {
        key = {
            hdr.ipv4.dst_addr: exact @name("dst_addr");
        }
        actions = {
            mark_protected;
            @defaultonly protected_hosts_miss;
        }
        const default_action = protected_hosts_miss();
        counters = protected_hosts_counter;
        size = PROTECTED_HOSTS_TABLE_SIZE;
    }

    @id(0x0100001e)
    action mark_trusted() {
        trusted_ports_counter.count();
    }

    @id(0x0100001f)
    action trusted_ports_miss() {
        trusted_ports_counter.count();
    }

    @id(0x02000018)
    table trusted_ports {
        key = {
            ig_intr_md.ingress_port: exact @name("port");
        }
        actions = {
            mark_trusted;
            @defaultonly trusted_ports_miss;
        }
        const default_action = trusted_ports_miss();
        counters = trusted_ports_counter;
        size = TRUSTED_PORTS_TABLE_SIZE;
    }

    apply {
        if (hdr.tcp.isValid()) {
            if (vip.apply().hit) {
                ig_md.client_addr = hdr.ipv4.src_addr;
                ig_md.client_port = hdr.tcp.src_port;
                ig_md.vip_addr = hdr.ipv4.dst_addr;
                ig_md.vip_port = hdr.tcp.dst_port;
                if (hdr.tcp.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN) {
                    ig_md.path = PATH_SYNACK;
                } else if (hdr.tcp.flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST | TCP_FLAG_ACK)
                               == TCP_FLAG_ACK && hdr.ipv4.total_len == ig_md.headers_len) {
                    ig_md.path = PATH_CLIENT_ACK;
                } else {
                    ig_md.path = PATH_FRONTEND;
                }
            } else if (backends.apply().hit) {
                ig_md.client_addr = hdr.ipv4.dst_addr;
                ig_md.client_port = hdr.tcp.dst_port;
                if (hdr.tcp.flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST) == 0) {
                    ig_md.path = PATH_BACKEND;
                } else {
                    ig_md.path = PATH_FRONTEND;
                }
            }
        }

        /* The guard: to a protected host's address as it arrived only from a trusted port, unless
         * it hit vip (the client ACKs rewritten to a back-end are addressed to the VIP; a VIP is no
         * protected host, so only the drop waits for vip). The tables do not depend on vip: they
         * share its stage (a dependency would push offload's memory into one stage more). */
        if (hdr.ipv4.isValid()) {
            if (protected_hosts.apply().hit) {
                if (!trusted_ports.apply().hit) {
                    if (!ig_md.vip_hit) {
                        ig_md.guard_drop = true;
                        ig_dprsr_md.drop_ctl = 0x1;
                    }
                }
            }
        }

        if (ig_md.path == PATH_SYNACK) {
            syn_cookie.apply();
            cookie_key_written();
            synack.apply(hdr, ig_md, ig_intr_md, ig_tm_md);
            if (ig_md.cookie_keyed == 0) {
                ig_dprsr_md.drop_ctl = 0x1;     /* no key written yet: the SYN-ACK is not sent */
            }
        } else if (ig_md.path == PATH_CLIENT_ACK || ig_md.path == PATH_BACKEND) {
            if (offload.apply().hit) {
                if (ig_md.path == PATH_CLIENT_ACK) {
                    if (backend_by_index.apply().hit) {
                        ig_md.path = PATH_DONE;
                    } else {
                        ig_md.path = PATH_FRONTEND;   /* unknown index: the front-end knows */
                    }
                } else {
                    hdr.ipv4.src_addr = ig_md.vip_addr;
                    hdr.tcp.src_port = ig_md.vip_port;
                    ig_md.l4_update = true;
                    ig_md.path = PATH_ROUTE;
                }
            } else {
                ig_md.path = PATH_FRONTEND;
            }
        }

        if (ig_md.path == PATH_FRONTEND && !ig_md.guard_drop) {
            ig_md.bucket = (bit<16>)(bucket_hash.get({ig_md.client_addr, ig_md.client_port})
                                     [FRONTEND_BUCKETS_LOG2 - 1:0]);
            frontend_bucket.apply();
        }
    }
}

#endif
