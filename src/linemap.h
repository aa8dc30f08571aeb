/*
 * linemap.h — a bitmap by job line number.
 *
 * A job's lines are marked in several maps (recorded, read as items, result
 * sent on; the crash guard reads the recorded one), all of the same shape:
 * one bit per line, allocated for nbits lines.  One definition keeps the
 * word arithmetic and the bounds rule (a line past the map is not marked)
 * in one place.  Callers hold whatever lock guards the map.
 */
#ifndef PL_LINEMAP_H
#define PL_LINEMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* A zeroed map for nbits lines, or NULL (out of memory). */
static inline uint64_t *pl_linemap_new(unsigned long nbits)
{
	return calloc(nbits / 64 + 1, sizeof(uint64_t));
}

/* Whether line is marked; false for no map or a line past it. */
static inline bool pl_linemap_test(const uint64_t *map, unsigned long nbits, unsigned long line)
{
	return map && line < nbits && (map[line / 64] >> (line % 64) & 1);
}

/* Mark or clear line, which must be below the map's nbits. */
static inline void pl_linemap_set(uint64_t *map, unsigned long line, bool on)
{
	if (on)
		map[line / 64] |= 1ull << (line % 64);
	else
		map[line / 64] &= ~(1ull << (line % 64));
}

#endif
