/*
 * core_tbb.cpp — the no-op 3-stage pipeline of bench/core in oneTBB.
 *
 * The long-term reference for pipelined's core: tbb::parallel_pipeline with
 * an input filter (serial, like pl_pipeline_feed from one thread), three
 * parallel no-op filters standing for the three stages, and a serial sink
 * that counts.  oneTBB has no per-stage widths or queues: concurrency is
 * bounded by the number of live tokens (items in flight) and by the
 * scheduler's thread count.  We give it TOKENS live tokens (bench/core
 * passes the sum of the stage capacities, 3·16 = 48: the items pipelined can
 * hold in its queues) and let it use every core, as its default arena does.
 *
 * Usage: core_tbb ITEMS TOKENS
 * Prints "items=N seconds=S rate=R"; exits 1 unless every item came out.
 */
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstdint>

#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/version.h>

static unsigned long arg(const char *s, const char *what)
{
	char *end;
	unsigned long v = std::strtoul(s, &end, 10);

	if (end == s || *end || v == 0) {
		std::fprintf(stderr, "core_tbb: %s must be a positive integer, got '%s'\n", what, s);
		std::exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		std::fprintf(stderr, "usage: core_tbb ITEMS TOKENS\n");
		return 2;
	}
	const unsigned long n = arg(argv[1], "ITEMS");
	const size_t tokens = arg(argv[2], "TOKENS");
	unsigned long next = 0, done = 0;
	using tbb::filter_mode;

	auto t0 = std::chrono::steady_clock::now();
	tbb::parallel_pipeline(tokens,
		tbb::make_filter<void, uintptr_t>(filter_mode::serial_in_order,
			[&](tbb::flow_control &fc) -> uintptr_t {
				if (next == n) {
					fc.stop();
					return 0;
				}
				return ++next;
			}) &
		tbb::make_filter<uintptr_t, uintptr_t>(filter_mode::parallel,
			[](uintptr_t x) { return x; }) &
		tbb::make_filter<uintptr_t, uintptr_t>(filter_mode::parallel,
			[](uintptr_t x) { return x; }) &
		tbb::make_filter<uintptr_t, uintptr_t>(filter_mode::parallel,
			[](uintptr_t x) { return x; }) &
		tbb::make_filter<uintptr_t, void>(filter_mode::serial_out_of_order,
			[&](uintptr_t) { done++; }));
	auto t1 = std::chrono::steady_clock::now();
	double s = std::chrono::duration<double>(t1 - t0).count();

	if (done != n) {
		std::fprintf(stderr, "core_tbb: %lu items fed, %lu done\n", n, done);
		return 1;
	}
	std::printf("items=%lu seconds=%.3f rate=%.0f tbb=%s\n", n, s, n / s, TBB_VERSION_STRING);
	return 0;
}
