/* Byte-order helpers for BPF programs of the whole project.
 *
 * Convention: a struct field that holds network byte order has a "be" type (__be16/__be32) and says
 * so in its comment; everything else is host order. Convert once, at the edge.
 */
#ifndef MIRESGA_BPF_ENDIAN_H
#define MIRESGA_BPF_ENDIAN_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>

#define be16_to_host(x) bpf_ntohs(x)
#define be32_to_host(x) bpf_ntohl(x)
#define host_to_be16(x) bpf_htons(x)
#define host_to_be32(x) bpf_htonl(x)

#endif /* MIRESGA_BPF_ENDIAN_H */
