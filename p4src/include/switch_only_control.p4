/* Control SwitchOnly (docs/switch-only-datapath.md): the switch-only baseline's tables vip, backends,
 * conn_in, conn_out, syn_cookie, slow_path and the back-end guard's protected_hosts and trusted_ports, the cookie SYN-ACK without SACK (control SynAck,
 * synack.p4), and the per-connection splice with sequence translation. It sets ig_md.path;
 * SwitchIngress (p4src/switch_only.p4) applies control Forwarding when it is PATH_ROUTE.
 * The emulated target's twin is system/switch/bpf/switch_only.c. Ids: tables 0x0200002x, actions
 * 0x010000xx (from 0x21), direct counters 0x1300002x.
 *
 * Paths (miresga_headers.p4's constants): PATH_CLIENT_ACK is "client -> VIP, no SYN/FIN/RST:
 * conn_in", PATH_BACKEND "back-end -> client, no SYN/FIN/RST: conn_out", PATH_SLOW_PATH "to the
 * CPU port, unchanged".
 */
#ifndef _MIRESGA_SWITCH_ONLY_CONTROL_P4_
#define _MIRESGA_SWITCH_ONLY_CONTROL_P4_

const miresga_path_t PATH_SLOW_PATH = 6;

control SwitchOnly(inout ingress_headers_t hdr,
                   inout ingress_metadata_t ig_md,
                   in ingress_intrinsic_metadata_t ig_intr_md,
                   inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                   inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {

    SynAck(false) synack;           /* SACK is never offered */

    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) vip_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) backends_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) conn_in_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) conn_out_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) protected_hosts_counter;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) trusted_ports_counter;

    /* --- vip: (dst IP, dst port) -> client -> VIP ---------------------------------------- */
    @id(0x01000021)
    action mark_vip() {
        ig_md.vip_hit = true;
        vip_counter.count();
    }

    @id(0x01000022)
    action miss_vip() {
        vip_counter.count();
    }

    @id(0x02000021)
    table vip {
        key = {
            hdr.ipv4.dst_addr: exact @name("dst_addr");
            hdr.tcp.dst_port: exact @name("dst_port");
        }
        actions = {
            mark_vip;
            @defaultonly miss_vip;
        }
        const default_action = miss_vip();
        counters = vip_counter;
        size = VIP_TABLE_SIZE;
    }

    /* --- backends: (src IP, src port) -> back-end -> client -------------------------------- */
    @id(0x01000023)
    action mark_backend() {
        backends_counter.count();
    }

    @id(0x01000024)
    action miss_backend() {
        backends_counter.count();
    }

    @id(0x02000022)
    table backends {
        key = {
            hdr.ipv4.src_addr: exact @name("src_addr");
            hdr.tcp.src_port: exact @name("src_port");
        }
        actions = {
            mark_backend;
            @defaultonly miss_backend;
        }
        const default_action = miss_backend();
        counters = backends_counter;
        size = BACKENDS_TABLE_SIZE;
    }

    /* --- conn_in: client -> VIP 4-tuple -> the back-end, ack += delta (the slow path's) ----- */
    @id(0x01000025)
    action to_backend(ipv4_addr_t backend_addr, bit<16> backend_port, PortId_t port, mac_addr_t smac,
                      mac_addr_t dmac, bit<32> ack_delta) {
        hdr.ipv4.dst_addr = backend_addr;
        hdr.tcp.dst_port = backend_port;
        hdr.tcp.ack_no = hdr.tcp.ack_no + ack_delta;
        hdr.ethernet.src_addr = smac;
        hdr.ethernet.dst_addr = dmac;
        ig_tm_md.ucast_egress_port = port;
        ig_md.l4_update = true;
        conn_in_counter.count();
    }

    @id(0x01000026)
    action miss_conn_in() {
        conn_in_counter.count();
    }

    @id(0x02000023)
    table conn_in {
        key = {
            hdr.ipv4.src_addr: exact @name("client_addr");
            hdr.tcp.src_port: exact @name("client_port");
            hdr.ipv4.dst_addr: exact @name("vip_addr");
            hdr.tcp.dst_port: exact @name("vip_port");
        }
        actions = {
            to_backend;
            @defaultonly miss_conn_in;
        }
        const default_action = miss_conn_in();
        counters = conn_in_counter;
        size = CONN_IN_TABLE_SIZE;
    }

    /* --- conn_out: back-end -> client 4-tuple -> source := the VIP, seq += seq_delta ---------
     * seq_delta is the negated delta (2^32 - delta): a Tofino subtraction cannot take its second
     * operand from action data, so the control plane stores -delta and the action adds. */
    @id(0x01000027)
    action to_client(ipv4_addr_t vip_addr, bit<16> vip_port, bit<32> seq_delta) {
        hdr.ipv4.src_addr = vip_addr;
        hdr.tcp.src_port = vip_port;
        hdr.tcp.seq_no = hdr.tcp.seq_no + seq_delta;
        ig_md.l4_update = true;
        conn_out_counter.count();
    }

    @id(0x01000028)
    action miss_conn_out() {
        conn_out_counter.count();
    }

    @id(0x02000024)
    table conn_out {
        key = {
            hdr.ipv4.src_addr: exact @name("backend_addr");
            hdr.tcp.src_port: exact @name("backend_port");
            hdr.ipv4.dst_addr: exact @name("client_addr");
            hdr.tcp.dst_port: exact @name("client_port");
        }
        actions = {
            to_client;
            @defaultonly miss_conn_out;
        }
        const default_action = miss_conn_out();
        counters = conn_out_counter;
        size = CONN_OUT_TABLE_SIZE;
    }

    /* --- syn_cookie: keyless; the control plane writes the cookie key and slot (a key of 0, as
     * before its first write, answers no SYN: the SYN is dropped) ----------------------------- */
    @id(0x01000029)
    action set_cookie_secret(bit<64> key, bit<32> slot) {
        ig_md.cookie_k0 = key[31:0];
        ig_md.cookie_k1 = key[63:32];
        ig_md.cookie_slot = slot;
    }

    @hidden action cookie_key_written() {
        ig_md.cookie_keyed = ig_md.cookie_k0 | ig_md.cookie_k1;
    }

    @id(0x02000025)
    table syn_cookie {
        actions = {
            @defaultonly set_cookie_secret;
        }
        default_action = set_cookie_secret(0, 0);
        size = SYN_COOKIE_TABLE_SIZE;
    }

    /* --- slow_path: keyless; the control plane sets the CPU port (inventory switch.cpu_port) -- */
    @id(0x0100002a)
    action set_slow_path(PortId_t port) {
        ig_tm_md.ucast_egress_port = port;
    }

    @id(0x02000026)
    table slow_path {
        actions = {
            @defaultonly set_slow_path;
        }
        default_action = set_slow_path(0);
        size = SLOW_PATH_TABLE_SIZE;
    }

    /* --- the back-end guard (docs/miresga-datapath.md "The guard"): protected_hosts, a back-end's
     * data address; trusted_ports, the ports allowed to send to one. Applied to IPv4 that missed
     * vip; a protected destination from a port trusted_ports misses is dropped ---------------- */
    @id(0x0100002b)
    action mark_protected() {
        protected_hosts_counter.count();
    }

    @id(0x0100002c)
    action miss_protected() {
        protected_hosts_counter.count();
    }

    @id(0x02000027)
    table protected_hosts {
        key = {
            hdr.ipv4.dst_addr: exact @name("dst_addr");
        }
        actions = {
            mark_protected;
            @defaultonly miss_protected;
        }
        const default_action = miss_protected();
        counters = protected_hosts_counter;
        size = PROTECTED_HOSTS_TABLE_SIZE;
    }

    @id(0x0100002d)
    action mark_trusted() {
        trusted_ports_counter.count();
    }

    @id(0x0100002e)
    action miss_trusted() {
        trusted_ports_counter.count();
    }

    @id(0x02000028)
    table trusted_ports {
        key = {
            ig_intr_md.ingress_port: exact @name("port");
        }
        actions = {
            mark_trusted;
            @defaultonly miss_trusted;
        }
        const default_action = miss_trusted();
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
                if ((hdr.tcp.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN) {
                    ig_md.path = PATH_SYNACK;
                } else if ((hdr.tcp.flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST)) == 0) {
                    ig_md.path = PATH_CLIENT_ACK;
                } else {
                    ig_md.path = PATH_SLOW_PATH;
                }
            } else if (backends.apply().hit) {
                if ((hdr.tcp.flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST)) == 0) {
                    ig_md.path = PATH_BACKEND;
                } else {
                    ig_md.path = PATH_SLOW_PATH;
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
        } else if (ig_md.path == PATH_CLIENT_ACK) {
            if (conn_in.apply().hit) {
                ig_md.path = PATH_DONE;         /* egress port, MACs and addresses set */
            } else {
                ig_md.path = PATH_SLOW_PATH;
            }
        } else if (ig_md.path == PATH_BACKEND) {
            if (conn_out.apply().hit) {
                ig_md.path = PATH_ROUTE;        /* route sets port and MACs */
            } else {
                ig_md.path = PATH_SLOW_PATH;
            }
        }

        if (ig_md.path == PATH_SLOW_PATH && !ig_md.guard_drop) {
            slow_path.apply();                  /* the frame leaves unchanged */
        }
    }
}

#endif
