/*
 * fuzz.h — what the libFuzzer targets in tests/fuzz share.
 *
 * An invariant that does not hold must stop the run the way a crash does,
 * so that libFuzzer saves the input as an artifact: print why, then abort().
 * assert() would vanish under -DNDEBUG (RelWithDebInfo keeps it, but a fuzz
 * check should never depend on the build type).
 */
#ifndef PL_FUZZ_H
#define PL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                                   \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "fuzz invariant failed: %s (%s:%d): ",  \
				#cond, __FILE__, __LINE__);                     \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			abort();                                                \
		}                                                               \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
