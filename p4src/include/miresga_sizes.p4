/* Table sizes of pipeline miresga (system/switch/bpf/miresga_tables.h, system/switch/tables.py
 * have the same numbers; checked by system/switch/tests/test_correspondence.py). */
#ifndef _MIRESGA_MIRESGA_SIZES_P4_
#define _MIRESGA_MIRESGA_SIZES_P4_

#define VIP_TABLE_SIZE 64
#define BACKENDS_TABLE_SIZE 1024
#define FRONTEND_BUCKET_TABLE_SIZE 256
#ifndef OFFLOAD_TABLE_SIZE   /* -DOFFLOAD_TABLE_SIZE=N: scripts/p4-compile.sh --fit */
#define OFFLOAD_TABLE_SIZE 143360
#endif
#define BACKEND_BY_INDEX_TABLE_SIZE 1024
#define SYN_COOKIE_TABLE_SIZE 1
/* The back-end guard's tables (switch_only declares them too, with these sizes). */
#define PROTECTED_HOSTS_TABLE_SIZE 1024
#define TRUSTED_PORTS_TABLE_SIZE 128

/* N of the bucket hash, CRC32(client_ip ++ client_port) mod N: a power of two (mod = low bits). */
#define FRONTEND_BUCKETS_LOG2 8

#endif
