/*
 * item.c — life cycle of struct pl_item.  Kept apart from the stages so that
 * whoever holds an item last (result sink, fast stop, a failing stage) frees
 * it the same way.
 */
#include <stdlib.h>

#include <glib.h>

#include "item.h"

struct pl_item *pl_item_new(void)
{
	return calloc(1, sizeof(struct pl_item));
}

void pl_item_free_data(struct pl_item *it)
{
	free(it->data);
	it->data = NULL;
	it->len = 0;
}

void pl_item_free_outputs(struct pl_item *it)
{
	for (size_t i = 0; i < it->noutputs; i++) {
		g_free(it->outputs[i].buf);
		free(it->outputs[i].location);
	}
	free(it->outputs);
	it->outputs = NULL;
	it->noutputs = 0;
}

void pl_item_free(struct pl_item *it)
{
	if (!it)
		return;
	pl_item_free_data(it);
	pl_item_free_outputs(it);
	free(it->source);
	free(it->name);
	free(it);
}
