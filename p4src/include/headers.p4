/* Headers and metadata shared by the Miresga pipelines. */
#ifndef _MIRESGA_HEADERS_P4_
#define _MIRESGA_HEADERS_P4_

typedef bit<48> mac_addr_t;
typedef bit<32> ipv4_addr_t;

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_ARP = 0x0806;

header ethernet_h {
    mac_addr_t dst_addr;
    mac_addr_t src_addr;
    bit<16> ether_type;
}

header ipv4_h {
    bit<4> version;
    bit<4> ihl;
    bit<8> diffserv;
    bit<16> total_len;
    bit<16> identification;
    bit<3> flags;
    bit<13> frag_offset;
    bit<8> ttl;
    bit<8> protocol;
    bit<16> hdr_checksum;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
}

struct ingress_headers_t {
    ethernet_h ethernet;
    ipv4_h ipv4;
}

struct ingress_metadata_t {
    bool ipv4_options;   /* IHL > 5: header checksum is not recomputed by the deparser, drop */
}

struct egress_headers_t {}
struct egress_metadata_t {}

#endif
