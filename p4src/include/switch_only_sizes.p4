/* Table sizes of pipeline switch_only besides Miresga's vip, backends and syn_cookie
 * (miresga_sizes.p4); system/switch/bpf/switch_only_tables.h and system/switch/tables.py have the
 * same numbers (checked by system/switch/tests/test_correspondence.py). conn_in/conn_out: the
 * Tofino-1 figure (system/switch/profiles/tofino1.yaml: two wide entries per connection, about
 * half the offload table's SRAM each). */
#ifndef _MIRESGA_SWITCH_ONLY_SIZES_P4_
#define _MIRESGA_SWITCH_ONLY_SIZES_P4_

#ifndef CONN_IN_TABLE_SIZE   /* -DCONN_IN_TABLE_SIZE=N: scripts/p4-compile.sh --fit */
#define CONN_IN_TABLE_SIZE 71680
#endif
#ifndef CONN_OUT_TABLE_SIZE   /* -DCONN_OUT_TABLE_SIZE=N: scripts/p4-compile.sh --fit */
#define CONN_OUT_TABLE_SIZE 71680
#endif
#define SLOW_PATH_TABLE_SIZE 1

#endif
