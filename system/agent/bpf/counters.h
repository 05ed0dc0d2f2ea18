/* Counter updates: per-CPU values, so plain adds are race free. */
#ifndef MIRESGA_AGENT_COUNTERS_H
#define MIRESGA_AGENT_COUNTERS_H

#include "maps.h"

static __always_inline struct agent_counters *agent_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

/* COUNT(c, field): c may be NULL (lookup cannot fail for key 0, but the verifier wants a check). */
#define COUNT(c, field)                                                                            \
	do {                                                                                       \
		if (c)                                                                             \
			(c)->field++;                                                                \
	} while (0)

#define COUNT_N(c, field, n)                                                                       \
	do {                                                                                       \
		if (c)                                                                             \
			(c)->field += (n);                                                           \
	} while (0)

#endif
