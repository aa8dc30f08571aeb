/*
 * e2e_ceiling.c — the in-memory ceiling for bench/e2e: how fast libvips
 * itself thumbnails the corpus when there is no network, no spool and no
 * pipeline at all.
 *
 *   e2e_ceiling thumb THREADS REPEAT FILE…   vips_thumbnail_buffer 256 +
 *       jpegsave_buffer Q80 strip, THREADS threads taking the next image
 *       from one shared counter, the corpus REPEAT times over
 *   e2e_ceiling decode TIMES FILE…   one thread: decode each PNG fully
 *       (libvips' pngload, as pipelined's loader does) TIMES times and print
 *       the best CPU seconds per file: the decode bound of a format that
 *       cannot shrink on load (djpeg does the JPEGs)
 *   e2e_ceiling streams THREADS REPEAT FILE…   the decode bound measured
 *       like the ceiling, for a shared machine: THREADS threads decode the
 *       corpus REPEAT times from memory, JPEG at the DCT shrink pipelined
 *       uses (the largest of 8, 4, 2, 1 that still covers the 256 box),
 *       PNG in full; wall seconds
 *
 * All files are read into memory before the clock starts.  Output is one
 * line of JSON on stdout so that bench/e2e can read it without parsing
 * prose.  libvips' own threads are off, as in pipelined: the threads here
 * are the parallelism, one per core.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vips/vips.h>

struct src {
	void *data;
	size_t len;
};

static struct src *srcs;
static int nsrcs, repeat;
static atomic_int next_job, failures;
static atomic_llong out_bytes;
static bool decode_only;

static double now(int clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int read_all(const char *path, struct src *s)
{
	gchar *d;
	gsize n;

	if (!g_file_get_contents(path, &d, &n, NULL)) {
		fprintf(stderr, "e2e_ceiling: cannot read %s\n", path);
		return -1;
	}
	s->data = d;
	s->len = n;
	return 0;
}

/* As src/resizedirect.c's dct_shrink() for a 256×256 inside box. */
static int dct_shrink(int w, int h)
{
	double f = fmax(1.0, fmax(w / 256.0, h / 256.0));
	int tw = (int)ceil(w / f - 1e-9), th = (int)ceil(h / f - 1e-9);

	for (int s = 8; s > 1; s /= 2)
		if (w / s >= tw && h / s >= th)
			return s;
	return 1;
}

/* Decode one source as the bound counts it; 0 or -1. */
static int decode_one(const struct src *s)
{
	VipsImage *hdr = vips_image_new_from_buffer(s->data, s->len, "",
						    "access", VIPS_ACCESS_SEQUENTIAL, NULL);
	const char *loader = NULL;
	VipsImage *img, *m;

	if (!hdr)
		return -1;
	vips_image_get_string(hdr, "vips-loader", &loader);
	if (loader && vips_isprefix("jpegload", loader)) {
		int shrink = dct_shrink(hdr->Xsize, hdr->Ysize);

		g_object_unref(hdr);
		if (vips_jpegload_buffer(s->data, s->len, &img, "shrink", shrink,
					 "access", VIPS_ACCESS_SEQUENTIAL, NULL))
			return -1;
	} else {
		img = hdr;
	}
	m = vips_image_copy_memory(img);
	g_object_unref(img);
	if (!m)
		return -1;
	g_object_unref(m);
	return 0;
}

static void *thumb_worker(void *arg)
{
	(void)arg;
	for (;;) {
		int j = atomic_fetch_add(&next_job, 1);
		VipsImage *t;
		void *buf;
		size_t len;

		if (j >= nsrcs * repeat)
			break;
		if (decode_only) {
			if (decode_one(&srcs[j % nsrcs]))
				atomic_fetch_add(&failures, 1);
			continue;
		}
		if (vips_thumbnail_buffer(srcs[j % nsrcs].data, srcs[j % nsrcs].len, &t, 256,
					  "height", 256, NULL)) {
			atomic_fetch_add(&failures, 1);
			continue;
		}
		if (vips_jpegsave_buffer(t, &buf, &len, "Q", 80, "strip", TRUE, NULL))
			atomic_fetch_add(&failures, 1);
		else {
			atomic_fetch_add(&out_bytes, (long long)len);
			g_free(buf);
		}
		g_object_unref(t);
	}
	vips_thread_shutdown();
	return NULL;
}

static int thumb(int nthreads)
{
	pthread_t th[64];
	double t0, t1;

	if (nthreads < 1 || nthreads > 64)
		return fprintf(stderr, "e2e_ceiling: 1..64 threads\n"), 2;
	t0 = now(CLOCK_MONOTONIC);
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, thumb_worker, NULL))
			return fprintf(stderr, "e2e_ceiling: pthread_create failed\n"), 1;
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	t1 = now(CLOCK_MONOTONIC);
	printf("{\"images\":%d,\"seconds\":%.6f,\"failures\":%d,\"out_bytes\":%lld}\n",
	       nsrcs * repeat, t1 - t0, atomic_load(&failures), atomic_load(&out_bytes));
	return atomic_load(&failures) ? 1 : 0;
}

/* Per file, the best of `times` full decodes, in process CPU seconds
 * (libvips decodes in its own worker thread). */
static int decode(int times, char **names)
{
	printf("{");
	for (int i = 0; i < nsrcs; i++) {
		double best = 1e9;

		for (int k = 0; k < times; k++) {
			double t0 = now(CLOCK_PROCESS_CPUTIME_ID), t1;
			VipsImage *img = vips_image_new_from_buffer(srcs[i].data, srcs[i].len, "",
								    "access", VIPS_ACCESS_SEQUENTIAL,
								    NULL);
			VipsImage *m = img ? vips_image_copy_memory(img) : NULL;

			if (!m) {
				fprintf(stderr, "e2e_ceiling: cannot decode %s: %s\n", names[i],
					vips_error_buffer());
				return 1;
			}
			t1 = now(CLOCK_PROCESS_CPUTIME_ID);
			g_object_unref(m);
			g_object_unref(img);
			if (t1 - t0 < best)
				best = t1 - t0;
		}
		printf("%s\"%s\":%.6f", i ? "," : "", names[i], best);
	}
	printf("}\n");
	return 0;
}

int main(int argc, char **argv)
{
	int first, rc;

	if (argc < 4 || (strcmp(argv[1], "thumb") && strcmp(argv[1], "decode") &&
			 strcmp(argv[1], "streams")) ||
	    (strcmp(argv[1], "decode") && argc < 5)) {
		fprintf(stderr, "usage: e2e_ceiling thumb THREADS REPEAT FILE…\n"
			"       e2e_ceiling streams THREADS REPEAT FILE…\n"
			"       e2e_ceiling decode TIMES FILE…\n");
		return 2;
	}
	if (VIPS_INIT(argv[0]))
		return fprintf(stderr, "e2e_ceiling: libvips failed to start\n"), 1;
	vips_concurrency_set(1);
	vips_cache_set_max(0);
	decode_only = !strcmp(argv[1], "streams");
	first = strcmp(argv[1], "decode") ? 4 : 3;
	repeat = first == 4 ? atoi(argv[3]) : 1;
	nsrcs = argc - first;
	srcs = calloc((size_t)nsrcs, sizeof *srcs);
	if (!srcs || repeat < 1)
		return 1;
	for (int i = 0; i < nsrcs; i++)
		if (read_all(argv[first + i], &srcs[i]))
			return 1;
	rc = first == 4 ? thumb(atoi(argv[2])) : decode(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1,
							argv + first);
	vips_shutdown();
	return rc;
}
