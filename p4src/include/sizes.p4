/* Table sizes of every Miresga pipeline, in one place. The emulated target's maps use the same
 * numbers (system/switch/bpf/consts.h, system/switch/tables.py). */
#ifndef _MIRESGA_SIZES_P4_
#define _MIRESGA_SIZES_P4_

#define ROUTE_TABLE_SIZE 1024

#endif
