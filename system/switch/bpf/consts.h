/* Constants of the emulated switch pipelines. Mirrored in system/switch/tables.py (checked by
 * system/switch/tests/test_correspondence.py). */
#ifndef MIRESGA_SWITCH_CONSTS_H
#define MIRESGA_SWITCH_CONSTS_H

/* P4 port numbers are 1..MAX_PORTS; index 0 of per-port maps is unused. */
#define MAX_PORTS 64

/* Table sizes (the P4 program's p4src/include/sizes.p4 has the same numbers). */
#ifndef ROUTE_TABLE_SIZE
#define ROUTE_TABLE_SIZE 1024
#endif

/* Table ids: index into table_counters. */
#define TABLE_ROUTE 0
#define NUM_TABLES 1

/* Action codes stored in table values (0 never appears in an installed entry). */
#define ACTION_NONE 0
#define ROUTE_ACTION_FORWARD 1
#define ROUTE_ACTION_DROP 2

/* Drop reasons: index into drop_counters. */
#define DROP_NONE 0           /* not dropped */
#define DROP_NOT_IPV4 1       /* EtherType other than IPv4 and ARP */
#define DROP_ARP 2            /* ARP: hosts have static neighbour entries, the switch answers none */
#define DROP_MALFORMED 3      /* truncated Ethernet/IPv4 header, bad version or IHL */
#define DROP_TTL_EXPIRED 4    /* IPv4 TTL <= 1 on arrival */
#define DROP_TABLE_MISS 5     /* route: no entry matched, const default action drop */
#define DROP_ACTION 6         /* an entry's action was drop */
#define DROP_NO_EGRESS 7      /* the egress port has no interface in the port map */
#define DROP_UNKNOWN_INGRESS 8 /* arrived on an interface that is not a configured port */
#define DROP_IP_OPTIONS 9     /* IPv4 with options (IHL > 5): the P4 program drops them too */
#define DROP_NO_COOKIE_KEY 10  /* a SYN to a VIP before the control plane wrote the cookie key */
#define DROP_UNTRUSTED_PORT 11 /* the guard: to a protected host (a back-end) from an untrusted port */
#define NUM_DROP_REASONS 12

#endif
