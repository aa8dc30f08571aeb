/*
 * nameset.c — see nameset.h.
 *
 * Why hashes and not the names: a job of a million lines hands out a
 * million names, and 8 bytes each is all the job keeps in memory.  Two
 * different names with the same 64-bit hash would be taken for one (the
 * second made unique, or refused as a duplicate NAME); at a million names
 * the odds are about 1 in 4·10^7 per job, and FNV-1a followed by a mixer
 * spreads the similar names jobs hold ("a", "a-2", …) over the table.
 * Open addressing with linear probing, kept at most half full.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "nameset.h"

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a, then a mixer for the table */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h ? h : 1;
}

static bool set_has(const struct pl_nameset *set, uint64_t h)
{
	if (!set->cap)
		return false;
	for (size_t i = h & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
		if (set->slot[i] == h)
			return true;
		if (set->slot[i] == 0)
			return false;
	}
}

static void set_put(struct pl_nameset *set, uint64_t h)
{
	size_t i = h & (set->cap - 1);

	while (set->slot[i] && set->slot[i] != h)
		i = (i + 1) & (set->cap - 1);
	if (!set->slot[i])
		set->count++;
	set->slot[i] = h;
}

int pl_nameset_add(struct pl_nameset *set, const char *name)
{
	uint64_t h = name_hash(name);

	if (set_has(set, h))
		return 0;
	if ((set->count + 1) * 2 > set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 64;
		struct pl_nameset bigger = { calloc(cap, sizeof(uint64_t)), cap, 0 };

		if (!bigger.slot)
			return -ENOMEM;
		for (size_t i = 0; i < set->cap; i++)
			if (set->slot[i])
				set_put(&bigger, set->slot[i]);
		free(set->slot);
		*set = bigger;
	}
	set_put(set, h);
	return 1;
}

void pl_nameset_free(struct pl_nameset *set)
{
	free(set->slot);
	*set = (struct pl_nameset){ 0 };
}
