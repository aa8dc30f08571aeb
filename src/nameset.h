/*
 * nameset.h — a set of names that remembers only a 64-bit hash of each:
 * the names a job has handed out (so that a derived name is made unique
 * and an explicit one is not used twice) and the dot-files of new/ already
 * warned about (so that each is said once).
 */
#ifndef PL_NAMESET_H
#define PL_NAMESET_H

#include <stddef.h>
#include <stdint.h>

/* Start zeroed. */
struct pl_nameset {
	uint64_t *slot;		/* open addressing; 0 marks a free slot */
	size_t cap, count;
};

/* 1 if name was added, 0 if it was there already, -ENOMEM. */
int  pl_nameset_add(struct pl_nameset *set, const char *name);
void pl_nameset_free(struct pl_nameset *set);

#endif
