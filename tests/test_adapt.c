/*
 * test_adapt.c — adaptive stage widths on made-up statistics: a stage that
 * holds the pipeline back grows (by the next stage's room, then by a
 * quarter after a cut) up to its max; a next queue that stays full narrows
 * it by one a tick, the far side's retries (where they count) cut it to
 * 0.7x; idleness shrinks it; it never leaves [min, max]; a fixed stage is
 * never touched; a next stage that used part of its workers' time since
 * the last tick has room however busy it looks.  Made-up: resize has 4
 * workers, 1 busy, so a
 * starving download may take up to 4 times its width before the first cut.
 */
#include <check.h>
#include <string.h>

#include "adapt.h"

enum { DL, RS, UP, N };

static const size_t cap[N] = { 16, 16, 16 };
static struct pl_stage_stats st[N];
static unsigned width[N];
static enum pl_adapt_why why[N];

/* Download has a backlog and every worker busy; resize idles. */
static void download_is_the_bottleneck(const struct pl_adapt *a)
{
	memset(st, 0, sizeof st);
	st[DL].width = st[DL].busy = a->st[DL].width;
	st[DL].queued = 16;
	st[RS].width = 4;
	st[RS].busy = 1;
	st[UP].width = 5;
}

/* The made-up statistics carry no processing times: a clock of 0 leaves
 * the next stage's use unknown, so only the snapshot speaks. */
static void tick(struct pl_adapt *a)
{
	pl_adapt_tick(a, 0, st, width, why);
	for (int i = 0; i < N; i++)
		st[i].width = width[i];
}

static void setup(struct pl_adapt *a)
{
	pl_adapt_init(a, N, cap, 0);
	pl_adapt_set(a, DL, true, false, 3, 16, 3);
	pl_adapt_set(a, UP, true, true, 5, 32, 5);
}

START_TEST(grows_while_the_next_stage_starves)
{
	struct pl_adapt a;

	setup(&a);
	download_is_the_bottleneck(&a);
	tick(&a);
	ck_assert_int_eq(why[DL], PL_ADAPT_STARVING);
	ck_assert_uint_eq(width[DL], 12);	/* × resize's room: 4 of 4 workers / 1 busy */
	ck_assert_int_eq(why[RS], PL_ADAPT_SAME);
	ck_assert_uint_eq(width[RS], 4);	/* fixed: untouched */
	for (int i = 0; i < 10; i++) {
		download_is_the_bottleneck(&a);
		tick(&a);
		ck_assert_uint_le(width[DL], 16);
	}
	ck_assert_uint_eq(width[DL], 16);
}
END_TEST

START_TEST(growth_follows_the_next_stage_s_room)
{
	struct pl_adapt a;

	setup(&a);
	download_is_the_bottleneck(&a);
	st[RS].busy = 3;		/* resize could take only a third more: × 2 at least */
	tick(&a);
	ck_assert_uint_eq(width[DL], 6);
	download_is_the_bottleneck(&a);
	st[RS].busy = 0;		/* all idle: × 4 at most */
	tick(&a);
	ck_assert_uint_eq(width[DL], 16);
}
END_TEST

START_TEST(a_busy_next_stage_stops_growth)
{
	struct pl_adapt a;

	setup(&a);
	download_is_the_bottleneck(&a);
	st[RS].queued = 3;		/* resize has work of its own */
	st[RS].busy = 4;
	tick(&a);
	ck_assert_int_eq(why[DL], PL_ADAPT_SAME);
	ck_assert_uint_eq(width[DL], 3);
}
END_TEST

/* A next stage that looks busy at every tick but used only part of its
 * workers' time since the last one (its processing-time sum says so) has
 * room: download grows by the inverse of that use.  Fully used, or with
 * too few finished calls to judge, it does not. */
START_TEST(growth_follows_the_next_stage_s_use)
{
	static const struct { uint64_t sum_us, calls; unsigned want; } cases[] = {
		{ 1000000, 20, 6 },	/* resize 2 workers, 1 s: 50 % used → × 2 */
		{ 400000, 20, 12 },	/* 20 % → × 4 (the most) */
		{ 1900000, 20, 3 },	/* 95 %: no room */
		{ 400000, 3, 3 },	/* 3 returns of 2 workers: unknown, busy */
	};

	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		struct pl_adapt a;

		setup(&a);
		download_is_the_bottleneck(&a);
		st[RS].width = st[RS].busy = 2;		/* the snapshot: all busy */
		pl_adapt_tick(&a, 1000000, st, width, why);	/* the clock starts */
		ck_assert_uint_eq(width[DL], 3);
		st[RS].hist_sum_us += cases[c].sum_us;
		st[RS].done += cases[c].calls;
		pl_adapt_tick(&a, 2000000, st, width, why);
		ck_assert_msg(width[DL] == cases[c].want, "case %zu: width %u, want %u", c,
			      width[DL], cases[c].want);
		ck_assert_int_eq(why[DL], cases[c].want == 3 ? PL_ADAPT_SAME : PL_ADAPT_STARVING);
	}
}
END_TEST

/* Ticks between the whole seconds: slow start grows on them, nothing else
 * moves (no narrowing, no idle shrink), and after a cut they do nothing. */
START_TEST(quick_ticks_only_speed_up_slow_start)
{
	struct pl_adapt a;

	pl_adapt_init(&a, N, cap, 1000000);
	pl_adapt_set(&a, DL, true, false, 3, 16, 3);
	download_is_the_bottleneck(&a);
	pl_adapt_tick(&a, 1000000 + PL_ADAPT_QUICK_US, st, width, why);
	ck_assert_int_eq(why[DL], PL_ADAPT_STARVING);
	ck_assert_uint_eq(width[DL], 12);	/* × resize's room, one quick tick in */
	/* the next queue fills: only a whole second may narrow */
	st[DL].width = width[DL];
	st[RS].queued = cap[RS];
	st[RS].busy = st[RS].width;
	for (uint64_t t = 1000000 + 2 * PL_ADAPT_QUICK_US; t < 2000000; t += PL_ADAPT_QUICK_US)
		pl_adapt_tick(&a, t, st, width, why);
	ck_assert_int_eq(why[DL], PL_ADAPT_SAME);
	ck_assert_uint_eq(width[DL], 12);
	pl_adapt_tick(&a, 2000000, st, width, why);	/* whole: full once */
	pl_adapt_tick(&a, 3000000, st, width, why);	/* full twice: narrow */
	ck_assert_int_eq(why[DL], PL_ADAPT_PUSHED);
	ck_assert_uint_eq(width[DL], 11);
	/* past the cut a starving stage waits for the whole second */
	download_is_the_bottleneck(&a);
	pl_adapt_tick(&a, 3000000 + PL_ADAPT_QUICK_US, st, width, why);
	ck_assert_int_eq(why[DL], PL_ADAPT_SAME);
	ck_assert_uint_eq(width[DL], 11);
	pl_adapt_tick(&a, 4000000, st, width, why);
	ck_assert_int_eq(why[DL], PL_ADAPT_STARVING);
	ck_assert_uint_eq(width[DL], 13);	/* + a quarter */
}
END_TEST

START_TEST(a_full_next_queue_narrows_then_growth_is_gentle)
{
	struct pl_adapt a;

	setup(&a);
	for (int i = 0; i < 3; i++) {
		download_is_the_bottleneck(&a);
		tick(&a);
	}
	ck_assert_uint_eq(width[DL], 16);
	download_is_the_bottleneck(&a);
	st[RS].queued = 16;		/* resize's queue full once: a burst, */
	st[RS].busy = 4;
	tick(&a);
	ck_assert_int_eq(why[DL], PL_ADAPT_SAME);
	ck_assert_uint_eq(width[DL], 16);
	download_is_the_bottleneck(&a);
	st[RS].queued = 16;		/* twice: resize is the bottleneck now */
	st[RS].busy = 4;
	tick(&a);
	ck_assert_int_eq(why[DL], PL_ADAPT_PUSHED);
	ck_assert_uint_eq(width[DL], 15);	/* by one: only memory is at stake */
	download_is_the_bottleneck(&a);
	st[RS].queued = 16;
	tick(&a);
	ck_assert_uint_eq(width[DL], 14);
	for (int i = 0; i < 20; i++) {
		download_is_the_bottleneck(&a);
		st[RS].queued = 16;
		tick(&a);
	}
	ck_assert_uint_eq(width[DL], 3);	/* min, not below */
	download_is_the_bottleneck(&a);
	tick(&a);
	ck_assert_uint_eq(width[DL], 4);	/* after a cut: +1, then by a quarter */
	download_is_the_bottleneck(&a);
	tick(&a);
	ck_assert_uint_eq(width[DL], 5);
}
END_TEST

START_TEST(idle_shrinks_slowly)
{
	struct pl_adapt a;
	int ticks = 0;

	setup(&a);
	for (int i = 0; i < 3; i++) {
		download_is_the_bottleneck(&a);
		tick(&a);
	}
	ck_assert_uint_eq(width[DL], 16);
	memset(st, 0, sizeof st);
	st[DL].width = 16;
	st[DL].busy = 1;
	st[RS].width = 4;
	st[UP].width = 5;
	for (; ticks < 4; ticks++) {
		tick(&a);
		ck_assert_uint_eq(width[DL], 16);
	}
	tick(&a);
	ck_assert_int_eq(why[DL], PL_ADAPT_IDLE);
	ck_assert_uint_eq(width[DL], 12);
	for (int i = 0; i < 100; i++)
		tick(&a);
	ck_assert_uint_eq(width[DL], 3);
}
END_TEST

START_TEST(retries_push_upload_back_not_download)
{
	struct pl_adapt a;

	setup(&a);
	/* upload, the last stage, with a backlog: grows */
	memset(st, 0, sizeof st);
	st[DL].width = 3;
	st[RS].width = 4;
	st[UP].width = st[UP].busy = 5;
	st[UP].queued = 10;
	tick(&a);
	ck_assert_uint_eq(width[UP], 10);
	/* then its far side answers with retries: cut */
	st[UP].busy = 10;
	st[UP].done += 10;
	st[UP].retried += 20;
	tick(&a);
	ck_assert_int_eq(why[UP], PL_ADAPT_PUSHED);
	ck_assert_uint_eq(width[UP], 7);
	/* download's retries (deferrals for a full host) do not cut it */
	download_is_the_bottleneck(&a);
	st[DL].retried = 1000;
	tick(&a);
	ck_assert_int_eq(why[DL], PL_ADAPT_STARVING);
	ck_assert_uint_eq(width[DL], 12);
}
END_TEST

START_TEST(new_bounds_clamp_and_fixed_pins)
{
	struct pl_adapt a;

	setup(&a);
	for (int i = 0; i < 3; i++) {
		download_is_the_bottleneck(&a);
		tick(&a);
	}
	ck_assert_uint_eq(width[DL], 16);
	pl_adapt_set(&a, DL, true, false, 3, 8, 16);	/* a reload: workers_max 8 */
	ck_assert_uint_eq(a.st[DL].width, 8);
	pl_adapt_set(&a, DL, false, false, 3, 8, 7);	/* a reload: workers = 7 */
	download_is_the_bottleneck(&a);
	st[DL].width = 7;
	tick(&a);
	ck_assert_int_eq(why[DL], PL_ADAPT_SAME);
	ck_assert_uint_eq(width[DL], 7);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("adapt");
	TCase *tc = tcase_create("adapt");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, grows_while_the_next_stage_starves);
	tcase_add_test(tc, growth_follows_the_next_stage_s_room);
	tcase_add_test(tc, a_busy_next_stage_stops_growth);
	tcase_add_test(tc, a_full_next_queue_narrows_then_growth_is_gentle);
	tcase_add_test(tc, idle_shrinks_slowly);
	tcase_add_test(tc, retries_push_upload_back_not_download);
	tcase_add_test(tc, new_bounds_clamp_and_fixed_pins);
	tcase_add_test(tc, growth_follows_the_next_stage_s_use);
	tcase_add_test(tc, quick_ticks_only_speed_up_slow_start);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
