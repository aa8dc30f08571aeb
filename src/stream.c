/*
 * stream.c — the NATS JetStream intake (see stream.h).  What a message
 * says is read by streammsg.c, apart from the connection (fuzzed).
 *
 * Why it is built this way:
 *  - One stream holds everything under SUBJECT.>, with work-queue retention:
 *    a message is gone once acked, and items, results and dead letters are
 *    told apart by subject, each with its own durable pull consumer (the
 *    shared one for items, one per owner for results).  Pull, not push: a
 *    daemon asks for as many items as its first queue has room for, so a
 *    slow daemon never hoards what a fast one could run; MaxAckPending caps
 *    it as well.
 *  - At least once, never lost: an item is acked only after its result is
 *    stored on the server (a synchronous publish).  A daemon that dies
 *    holding items gets them redelivered elsewhere after AckWait; a long
 *    item keeps its lease with InProgress (pl_stream_tick).  A result may
 *    therefore arrive twice; the owner records a line once.
 *  - A worker never waits on the server: a finished item's result goes to
 *    the outbox, which one publisher thread stores in order and then acks
 *    its item.  While the server is away the stages go on finishing what
 *    they hold and stay free, so the watchdog sees a daemon that works (a
 *    worker held in a publish counted as stuck: WatchdogSec into an outage
 *    the service manager killed the daemon); the results wait, as small
 *    records, and a stop waits for them (pl_stream_flush) until it is made
 *    fast.  One thread is enough: a publish is a round trip, a result an
 *    image's work.
 *  - A crash must not take the batch-mates down with the poison item: the
 *    server raises the delivery count of everything a dead daemon held, so
 *    a redelivered item runs alone (the daemon empties its pipeline around
 *    it) with its stream sequence on disk first (crashguard.h).  An item
 *    that crashes this daemon PL_CRASHGUARD_LIMIT times while running alone
 *    is dead-lettered with that reason and failed to its owner.  The
 *    server's MaxDeliver is the backstop across daemons: its advisory names
 *    the message, which is then dead-lettered the same way.
 *  - A delivery counts whether the item runs or not, so a crash must raise
 *    the count of the one item that ran alone and of nothing held behind
 *    it (else good items reach MaxDeliver while the poison item crashes
 *    daemon after daemon).  The rule: a daemon that starts, or that has
 *    just been handed a redelivered item, pulls one item at a time until a
 *    first delivery arrives at least AckWait later — the server hands out
 *    redeliveries before anything new, and by then whatever a dead daemon
 *    held has come back, so the redeliveries are through.  Pulling stops
 *    while the puller holds a redelivered item (it waits for its pipeline
 *    to empty, then runs it alone), and a batch that brings redelivered
 *    items among new ones has the new ones fed first, so that they are not
 *    held behind an item that may crash us.  Pulling one at a time costs a
 *    round trip an item, not the pipeline's width: new items go on being
 *    fed while the next is pulled.
 *    Redeliveries come in no order we choose, so a good one may run alone
 *    between two crashes of the poison item: the count the guard had at
 *    start stays with its item until that runs alone again (the guard
 *    names one suspect at a time).
 *  - The connection retries for ever in the background (libnats), so the
 *    daemon starts and keeps running without a server; the stream and the
 *    consumers are set up the first time the server is there.
 *  - Messages are JSON (jansson); a message that is not a valid item is
 *    failed to its owner when it names one, dead-lettered otherwise, and
 *    terminated: nothing that comes in can loop or crash a daemon.  Only
 *    when neither can be stored is it given back, with a growing delay,
 *    so that it is not lost (refuse()).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <nats/nats.h>

#include "backoff.h"
#include "config.h"
#include "crashguard.h"
#include "item.h"
#include "log.h"
#include "record.h"
#include "stream.h"
#include "streamdeny.h"
#include "streammsg.h"

#define GUARD_NAME ".stream.guard"	/* in the spool, beside new/ */
#define SUBJECT_MAX 256
/* A result for a job not open yet is asked for again after this long.  In
 * milliseconds: natsMsg_NakWithDelay takes them, not nanoseconds as the
 * server protocol does (1e9 there meant 11 days of a result held back). */
#define NAK_DELAY_MS 1000
/* A result the server would not store (denied, or a limit of the stream)
 * sends its item back after 0.5-1 s, 1-2 s, 2-4 s ... at most this long. */
#define NAK_DELAY_MAX_MS 300000
/* How often a reader looks whether its consumer is still there while its
 * fetches fail, and while they only time out (remake_lost). */
#define CHECK_FAILING_US 1000000ULL
#define CHECK_QUIET_US 5000000ULL

/* One pulled item, from delivery to ack. */
struct msg {
	struct msg *prev, *next;	/* s->flight */
	struct pl_stream *s;
	natsMsg *m;
	uint64_t seq, delivered;
	uint64_t lease_us;		/* delivery or last InProgress */
	char *job, *owner;
	/* Finished, its result waiting in the outbox: the record, and the
	 * item (its images dropped) for the logs. */
	struct msg *out_next;
	struct pl_item *it;
	char *rec;
};

struct pl_stream {
	const struct pl_stream_conf *c;
	natsOptions *opts;
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *work_sub, *results_sub, *advisory;
	char items_subj[SUBJECT_MAX], dead_subj[SUBJECT_MAX], mine_subj[SUBJECT_MAX];
	char results_durable[SUBJECT_MAX];

	/* Set-up, which waits on the server (seconds when it is slow), has a
	 * lock of its own: the tick's lease renewals (lock) must not wait on it. */
	pthread_mutex_t setup_lock;
	bool ready;			/* stream and consumers exist, subscribed */
	uint64_t checked_us[3];		/* remake_lost: items, results, stream */
	pthread_mutex_t lock;		/* the flight list, the guard, dead_seqs */
	struct msg flight;		/* sentinel of the in-flight list */
	int guard_dir;			/* the spool: where the guard lives */
	struct pl_crashguard *guard;
	struct pl_crashguard_state gs;
	uint64_t condemned;		/* stream seq that crashed us too often */
	/* The suspect the guard named at start, and the crashes put down to
	 * it: good items that come again before it run alone in between, and
	 * must not wipe its count (the guard names one suspect at a time). */
	uint64_t prior_seq;
	unsigned prior_crashes;
	/* From MaxDeliver advisories, to bury: as many as come (the server
	 * says it once; a sequence not kept stays in the stream for ever). */
	uint64_t *dead_seqs;
	size_t ndead_seqs, dead_cap;
	/* The puller's (pl_stream_pull): one at a time while careful, which
	 * ends at a first delivery from careful_since + AckWait on. */
	bool careful;
	uint64_t careful_since_us;

	/* The permission violations the server reported (on_async_error). */
	struct pl_streamdeny denials;

	/* Results of finished items, oldest first, for the publisher thread;
	 * nout counts those taken but not yet settled as well (flush). */
	pthread_mutex_t out_lock;
	pthread_cond_t out_cond;
	struct msg *out_head, **out_tail;
	size_t nout;
	bool out_quit;
	bool publisher_running;
	pthread_t publisher;

	atomic_bool connected;
	atomic_int stopping;		/* 0, STOP_INTAKE, STOP_ALL */
	atomic_bool closing;		/* our own disconnect: nothing to say */
	atomic_bool copies_fail;	/* a given-back copy was not taken: nak */
	atomic_uint_fast64_t pulled, in_flight, acked, redelivered, dead, published, results;
	atomic_uint_fast64_t rejected;		/* results for no job or line of ours */
};

enum { STOP_INTAKE = 1, STOP_ALL = 2 };

static const struct pl_intake stream_intake;

/* ---- connection ------------------------------------------------------- */

static void on_disconnected(natsConnection *nc, void *ud)
{
	struct pl_stream *s = ud;

	(void)nc;
	if (atomic_exchange(&s->connected, false) && !atomic_load(&s->closing))
		pl_log(LOG_WARNING, "stream: disconnected from the server; reconnecting");
}

static void on_connected(natsConnection *nc, void *ud)
{
	struct pl_stream *s = ud;
	char url[256] = "", ubuf[256];

	natsConnection_GetConnectedUrl(nc, url, sizeof url);
	pl_log_redact_url(url, ubuf, sizeof ubuf);
	if (!atomic_exchange(&s->connected, true))
		pl_log(LOG_NOTICE, "stream: connected to %s", ubuf);
}

/* "Permissions Violation for Publish to "SUBJ"": noted (publish() asks
 * streamdeny.c) and logged when streamdeny.c says so. */
static void note_denial(struct pl_stream *s, natsConnection *nc, const char *text)
{
	struct pl_streamdeny_note n;
	char url[256] = "", ubuf[256], since[48] = "";

	pl_streamdeny_add(&s->denials, text, pl_now_us(), &n);
	if (!n.say)
		return;
	natsConnection_GetConnectedUrl(nc, url, sizeof url);
	pl_log_redact_url(url, ubuf, sizeof ubuf);
	if (n.times)
		snprintf(since, sizeof since, " (%lu times since last logged)", n.times);
	pl_log(LOG_ERR, "stream: the server %s denies this user %s %s: %s%s%s",
	       ubuf, n.publish ? "publishing on" : "subscribing to",
	       n.subj, text, strncmp(n.subj, "$JS.API.", 8) == 0 ? " (the stream cannot be set up "
	       "or read without it)" : "", since);
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *ud)
{
	struct pl_stream *s = ud;
	const char *text = NULL;

	(void)sub;
	if (err == NATS_NOT_PERMITTED &&
	    natsConnection_GetLastError(nc, &text) == NATS_NOT_PERMITTED && text && *text) {
		char copy[256];

		snprintf(copy, sizeof copy, "%s", text);	/* the next error overwrites it */
		note_denial(s, nc, copy);
		return;
	}
	pl_log(LOG_WARNING, "stream: %s", natsStatus_GetText(err));
}

static int nats_err(natsStatus st)
{
	switch (st) {
	case NATS_OK:
		return 0;
	case NATS_TIMEOUT:
		return -ETIMEDOUT;
	case NATS_NO_MEMORY:
		return -ENOMEM;
	case NATS_NOT_FOUND:
		return -ENOENT;
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_NO_SERVER:
	case NATS_NOT_YET_CONNECTED:
	case NATS_STALE_CONNECTION:
		return -ENOTCONN;
	default:
		return -EIO;
	}
}

static int set_options(struct pl_stream *s)
{
	const struct pl_stream_conf *c = s->c;
	natsStatus st;

	st = natsOptions_Create(&s->opts);
	if (st == NATS_OK)
		st = natsOptions_SetServers(s->opts, (const char **)c->servers.v, (int)c->servers.n);
	if (st == NATS_OK)
		st = natsOptions_SetName(s->opts, c->node);
	if (st == NATS_OK)
		st = natsOptions_SetMaxReconnect(s->opts, -1);		/* for ever */
	if (st == NATS_OK)
		st = natsOptions_SetReconnectWait(s->opts, 500);
	if (st == NATS_OK)
		st = natsOptions_SetRetryOnFailedConnect(s->opts, true, on_connected, s);
	if (st == NATS_OK)
		st = natsOptions_SetDisconnectedCB(s->opts, on_disconnected, s);
	if (st == NATS_OK)
		st = natsOptions_SetReconnectedCB(s->opts, on_connected, s);
	if (st == NATS_OK)
		st = natsOptions_SetErrorHandler(s->opts, on_async_error, s);
	if (st == NATS_OK && *c->credentials)
		st = natsOptions_SetUserCredentialsFromFiles(s->opts, c->credentials, NULL);
	if (st == NATS_OK && *c->tls_ca)
		st = natsOptions_LoadCATrustedCertificates(s->opts, c->tls_ca);
	if (st == NATS_OK && *c->tls_cert)
		st = natsOptions_LoadCertificatesChain(s->opts, c->tls_cert, c->tls_key);
	if (st == NATS_OK && (*c->tls_ca || *c->tls_cert))
		st = natsOptions_SetSecure(s->opts, true);
	if (st != NATS_OK)
		pl_log(LOG_ERR, "stream: cannot set up the connection: %s", nats_GetLastError(NULL));
	return nats_err(st);
}

/* ---- set-up: the stream, the consumers -------------------------------- */

static int add_stream(struct pl_stream *s)
{
	char all[SUBJECT_MAX];
	const char *subjects[] = { all };
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus st;

	st = js_GetStreamInfo(&si, s->js, s->c->stream, NULL, &jerr);
	if (st == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return 0;
	}
	if (st != NATS_NOT_FOUND)
		return nats_err(st);
	snprintf(all, sizeof all, "%s.>", s->c->subject);
	jsStreamConfig_Init(&sc);
	sc.Name = s->c->stream;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Retention = js_WorkQueuePolicy;
	sc.Storage = js_FileStorage;
	sc.Replicas = s->c->replicas;
	st = js_AddStream(&si, s->js, &sc, NULL, &jerr);
	if (st == NATS_OK) {
		jsStreamInfo_Destroy(si);
		pl_log(LOG_NOTICE, "stream: created stream %s for %s (replicas %d)", s->c->stream, all,
		       s->c->replicas);
		return 0;
	}
	/* another daemon created it at the same moment */
	if (js_GetStreamInfo(&si, s->js, s->c->stream, NULL, NULL) == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return 0;
	}
	pl_log(LOG_ERR, "stream: cannot create stream %s: %s (JetStream error %d)", s->c->stream,
	       natsStatus_GetText(st), (int)jerr);
	return nats_err(st);
}

/*
 * A durable consumer made earlier with other settings (the fleet's
 * ack_wait, max_deliver, max_ack_pending or replicas changed, and this
 * daemon restarted with the new ones): libnats refuses to bind to it
 * ("configuration requests ack wait to be …"), and the intake would stay
 * dead until someone deleted the consumer by hand.  The settings are the
 * fleet's and take effect at a restart, so the consumer is updated to
 * this daemon's; true when it was (then bind again).
 */
static bool align_consumer(struct pl_stream *s, const char *durable, const jsConsumerConfig *want)
{
	jsConsumerInfo *ci = NULL, *ui = NULL;
	jsConsumerConfig *cfg;
	jsErrCode jerr = 0;
	natsStatus st;

	if (js_GetConsumerInfo(&ci, s->js, s->c->stream, durable, NULL, &jerr) != NATS_OK || !ci)
		return false;	/* not there, or not readable: the bind's error stands */
	cfg = ci->Config;
	if (cfg->AckWait == want->AckWait && cfg->MaxDeliver == want->MaxDeliver &&
	    cfg->MaxAckPending == want->MaxAckPending &&
	    (!cfg->Replicas || cfg->Replicas == want->Replicas)) {
		jsConsumerInfo_Destroy(ci);
		return false;
	}
	pl_log(LOG_NOTICE, "stream: consumer %s had ack_wait %g s, max_deliver %" PRId64
	       ", max_ack_pending %" PRId64 ", replicas %" PRId64 "; updating it to this "
	       "daemon's (%g s, %" PRId64 ", %" PRId64 ", %" PRId64 ")", durable,
	       (double)cfg->AckWait / 1e9, cfg->MaxDeliver, cfg->MaxAckPending, cfg->Replicas,
	       (double)want->AckWait / 1e9, want->MaxDeliver, want->MaxAckPending, want->Replicas);
	cfg->AckWait = want->AckWait;
	cfg->MaxDeliver = want->MaxDeliver;
	cfg->MaxAckPending = want->MaxAckPending;
	cfg->Replicas = want->Replicas;
	st = js_UpdateConsumer(&ui, s->js, s->c->stream, cfg, NULL, &jerr);
	if (st != NATS_OK)
		pl_log(LOG_ERR, "stream: cannot update consumer %s: %s (JetStream error %d)", durable,
		       natsStatus_GetText(st), (int)jerr);
	jsConsumerInfo_Destroy(ui);
	jsConsumerInfo_Destroy(ci);
	return st == NATS_OK;
}

/* What this daemon sets on a consumer it makes (max_deliver -1: without
 * limit); align_consumer() compares the same four. */
static void consumer_settings(const struct pl_stream *s, jsConsumerConfig *cfg,
			      int64_t max_ack_pending, int64_t max_deliver)
{
	cfg->AckPolicy = js_AckExplicit;
	cfg->AckWait = (int64_t)(s->c->ack_wait * 1e9);
	cfg->MaxDeliver = max_deliver;
	cfg->MaxAckPending = max_ack_pending;
	cfg->Replicas = s->c->replicas;
}

/* max_deliver -1: without limit.  The owner's results consumer has none: a
 * result is asked for again (a nak) as long as its job is not open yet,
 * which may take longer than an item's max_deliver tries (a long job read
 * again after a restart), and a result the server stopped delivering would
 * leave its job open for ever. */
static int pull_subscribe(struct pl_stream *s, natsSubscription **sub, const char *subj,
			  const char *durable, int64_t max_ack_pending, int64_t max_deliver)
{
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus st;

	jsSubOptions_Init(&so);
	so.Stream = s->c->stream;
	consumer_settings(s, &so.Config, max_ack_pending, max_deliver);
	st = js_PullSubscribe(sub, s->js, subj, durable, NULL, &so, &jerr);
	if (st != NATS_OK && align_consumer(s, durable, &so.Config))
		st = js_PullSubscribe(sub, s->js, subj, durable, NULL, &so, &jerr);
	if (st != NATS_OK)
		pl_log(LOG_ERR, "stream: cannot consume %s as %s: %s (JetStream error %d)", subj,
		       durable, natsStatus_GetText(st), (int)jerr);
	return nats_err(st);
}

static void on_advisory(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud);
static void *publisher_main(void *arg);

/* Everything that needs the server once; retried by the callers until it
 * works.  Under s->setup_lock. */
static int setup_locked(struct pl_stream *s)
{
	char adv[SUBJECT_MAX];
	natsStatus st;
	int r;

	if (s->ready)
		return 0;
	if (!atomic_load(&s->connected))
		return -ENOTCONN;
	if (!s->js && (st = natsConnection_JetStream(&s->js, s->nc, NULL)) != NATS_OK)
		return nats_err(st);
	if ((r = add_stream(s)) < 0)
		return r;
	if (!s->work_sub && (r = pull_subscribe(s, &s->work_sub, s->items_subj, s->c->consumer,
					    s->c->max_ack_pending, s->c->max_deliver)) < 0)
		return r;
	if (!s->results_sub && (r = pull_subscribe(s, &s->results_sub, s->mine_subj, s->results_durable,
					       -1, -1)) < 0)
		return r;
	snprintf(adv, sizeof adv, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", s->c->stream,
		 s->c->consumer);
	if (!s->advisory &&
	    (st = natsConnection_Subscribe(&s->advisory, s->nc, adv, on_advisory, s)) != NATS_OK)
		return nats_err(st);
	s->ready = true;
	pl_log(LOG_INFO, "stream: consuming %s as %s, results on %s", s->items_subj, s->c->consumer,
	       s->mine_subj);
	return 0;
}

/*
 * The stream or a consumer gone from the server under a running daemon
 * (deleted by hand, a single node back without its store): made again,
 * or the intake would stay dead until a restart.  Each reader checks its
 * own consumer when its fetch fails, and every so often while it only
 * times out; a publish that no stream answers checks the stream.  The
 * subscriptions stay: a pull names its consumer, not one instance of it.
 * durable NULL: the stream only.  At most once every `every_us` per
 * *checked_us (under s->setup_lock).
 */
static void remake_lost(struct pl_stream *s, const char *subj, const char *durable,
			int64_t max_ack_pending, int64_t max_deliver, uint64_t *checked_us,
			uint64_t every_us)
{
	uint64_t now = pl_now_us();
	jsStreamInfo *si = NULL;
	jsConsumerInfo *ci = NULL;
	jsConsumerConfig cfg;
	jsErrCode jerr = 0;
	natsStatus st;

	pthread_mutex_lock(&s->setup_lock);
	if (!s->ready || !atomic_load(&s->connected) || now - *checked_us < every_us)
		goto out;
	*checked_us = now;
	st = js_GetStreamInfo(&si, s->js, s->c->stream, NULL, &jerr);
	jsStreamInfo_Destroy(si);
	if (st == NATS_NOT_FOUND) {
		pl_log(LOG_WARNING, "stream: stream %s is gone from the server; creating it again",
		       s->c->stream);
		if (add_stream(s) < 0)
			goto out;
	} else if (st != NATS_OK) {
		goto out;
	}
	if (!durable || js_GetConsumerInfo(&ci, s->js, s->c->stream, durable, NULL, &jerr) !=
	    NATS_NOT_FOUND)
		goto out;
	pl_log(LOG_WARNING, "stream: consumer %s is gone from the server; making it again", durable);
	jsConsumerConfig_Init(&cfg);
	consumer_settings(s, &cfg, max_ack_pending, max_deliver);
	cfg.Durable = durable;
	cfg.FilterSubject = subj;
	st = js_AddConsumer(&ci, s->js, s->c->stream, &cfg, NULL, &jerr);
	if (st != NATS_OK)	/* another daemon's may be there now: checked again later */
		pl_log(LOG_ERR, "stream: cannot make consumer %s: %s (JetStream error %d)", durable,
		       natsStatus_GetText(st), (int)jerr);
out:
	jsConsumerInfo_Destroy(ci);
	pthread_mutex_unlock(&s->setup_lock);
}

static int setup(struct pl_stream *s)
{
	int r;

	pthread_mutex_lock(&s->setup_lock);
	r = setup_locked(s);
	pthread_mutex_unlock(&s->setup_lock);
	return r;
}

/* ---- open and close ---------------------------------------------------- */

/* The worker's crash guard: a suspect still named means this daemon died
 * while that item ran alone. */
static int guard_open(struct pl_stream *s, const char *dir)
{
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (dirfd < 0) {
		r = -errno;
		pl_log_errno(LOG_ERR, -r, "stream: cannot open %s: %s", dir, strerror(-r));
		return r;
	}
	s->guard_dir = dirfd;
	r = pl_crashguard_open(dirfd, GUARD_NAME, &s->guard, &s->gs);

	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "stream: cannot open the crash guard %s: %s", GUARD_NAME,
			     strerror(-r));
		return r;
	}
	if (!s->gs.suspect)
		return 0;
	s->gs.crashes++;
	pl_log(LOG_WARNING, "stream: the item at stream sequence %" PRIu64 " was running alone "
	       "when the daemon died (%u time%s)", s->gs.suspect, s->gs.crashes,
	       s->gs.crashes == 1 ? "" : "s");
	s->prior_seq = s->gs.suspect;
	s->prior_crashes = s->gs.crashes;
	if (s->gs.crashes >= PL_CRASHGUARD_LIMIT)
		s->condemned = s->gs.suspect;
	return pl_crashguard_write(s->guard, &s->gs);
}

int pl_stream_open(const struct pl_stream_conf *c, const char *guard_dir, struct pl_stream **out)
{
	struct pl_stream *s = calloc(1, sizeof *s);
	char ubuf[256];
	natsStatus st;
	int r;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->c = c;
	s->guard_dir = -1;
	s->careful = true;	/* what our last run held may come back */
	s->careful_since_us = pl_now_us();
	s->flight.next = s->flight.prev = &s->flight;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->setup_lock, NULL);
	pthread_mutex_init(&s->out_lock, NULL);
	pthread_cond_init(&s->out_cond, NULL);
	s->out_tail = &s->out_head;
	pl_streamdeny_init(&s->denials);
	snprintf(s->items_subj, sizeof s->items_subj, "%s.items", c->subject);
	snprintf(s->dead_subj, sizeof s->dead_subj, "%s.dead", c->subject);
	snprintf(s->mine_subj, sizeof s->mine_subj, "%s.results.%s", c->subject, c->node);
	snprintf(s->results_durable, sizeof s->results_durable, "results-%s", c->node);
	if ((r = guard_open(s, guard_dir)) < 0 || (r = set_options(s)) < 0) {
		pl_stream_close(s);
		return r;
	}
	if ((r = -pthread_create(&s->publisher, NULL, publisher_main, s)) < 0) {
		pl_log_errno(LOG_ERR, -r, "stream: cannot start the publisher thread: %s",
			     strerror(-r));
		pl_stream_close(s);
		return r;
	}
	s->publisher_running = true;
	st = natsConnection_Connect(&s->nc, s->opts);
	if (st == NATS_NOT_YET_CONNECTED) {
		pl_log_redact_url(c->servers.v[0], ubuf, sizeof ubuf);
		pl_log(LOG_WARNING, "stream: no server reachable yet (%s); retrying in the background",
		       ubuf);
	} else if (st != NATS_OK) {
		pl_log(LOG_ERR, "stream: cannot connect: %s", nats_GetLastError(NULL));
		pl_stream_close(s);
		return nats_err(st);
	} else {
		on_connected(s->nc, s);
	}
	setup(s);		/* or later, when the server is there */
	*out = s;
	return 0;
}

void pl_stream_close(struct pl_stream *s)
{
	if (!s)
		return;
	if (s->publisher_running) {
		/* after pl_stream_flush, or with nothing that could wait */
		atomic_store(&s->stopping, STOP_ALL);
		pthread_mutex_lock(&s->out_lock);
		s->out_quit = true;
		pthread_cond_broadcast(&s->out_cond);
		pthread_mutex_unlock(&s->out_lock);
		pthread_join(s->publisher, NULL);
	}
	pthread_mutex_lock(&s->lock);
	for (struct msg *m = s->flight.next; m != &s->flight; m = m->next)
		natsMsg_Nak(m->m, NULL);	/* items never finished go back at once */
	pthread_mutex_unlock(&s->lock);
	if (s->advisory)
		natsSubscription_Destroy(s->advisory);
	if (s->work_sub)
		natsSubscription_Destroy(s->work_sub);
	if (s->results_sub)
		natsSubscription_Destroy(s->results_sub);
	if (s->js)
		jsCtx_Destroy(s->js);
	atomic_store(&s->closing, true);
	if (s->nc) {
		natsConnection_Close(s->nc);
		natsConnection_Destroy(s->nc);
	}
	if (s->opts)
		natsOptions_Destroy(s->opts);
	pl_crashguard_close(s->guard, 0);
	if (s->guard_dir >= 0)
		close(s->guard_dir);
	/* libnats' own threads and memory (one stream a process), waited for:
	 * until they have unrolled one may still run a callback that reads s
	 * (on_disconnected, on_advisory), which must not be freed before. */
	if (nats_CloseAndWait(5000) != NATS_OK) {
		pl_log(LOG_WARNING, "stream: the NATS library did not close within 5 s");
		return;		/* s stays: the process is ending */
	}
	free(s->dead_seqs);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->setup_lock);
	pthread_mutex_destroy(&s->out_lock);
	pthread_cond_destroy(&s->out_cond);
	pl_streamdeny_finalise(&s->denials);
	free(s);
}

/* ---- publishing -------------------------------------------------------- */

/* -EREMOTEIO when the stream answered with a refusal (a JetStream error:
 * a limit reached, for one), -EACCES when the server denies this user
 * publishing on subj: what it said in why, when given.  A denial comes
 * only as an asynchronous error (on_async_error), while the publish times
 * out: a timeout with a denial of its subject noted is that denial. */
static int publish(struct pl_stream *s, const char *subj, const char *data, size_t len,
		   const char *const *headers, char *why, size_t whylen)
{
	natsMsg *m = NULL;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsStatus st;

	if (pl_streamdeny_publish_denied(&s->denials, subj, pl_now_us(), why, whylen))
		return -EACCES;
	st = natsMsg_Create(&m, subj, NULL, data, (int)len);
	for (size_t i = 0; st == NATS_OK && headers && headers[i]; i += 2)
		st = natsMsgHeader_Set(m, headers[i], headers[i + 1]);
	if (st == NATS_OK)
		st = js_PublishMsg(&pa, s->js, m, NULL, &jerr);
	jsPubAck_Destroy(pa);
	natsMsg_Destroy(m);
	/* No stream answers while a cluster elects its next stream leader
	 * (seconds): as transient as a lost connection. */
	if (st == NATS_NO_RESPONDERS || jerr == JSClusterNotAvailErr)
		return -EAGAIN;
	if (st == NATS_TIMEOUT &&
	    pl_streamdeny_publish_denied(&s->denials, subj, pl_now_us(), why, whylen))
		return -EACCES;
	if (st != NATS_OK && jerr) {
		const char *text = nats_GetLastError(NULL), *at;

		/* without libnats' "(file.c:line): " before the server's words */
		if (text && text[0] == '(' && (at = strstr(text, "): ")))
			text = at + 3;
		if (why)
			snprintf(why, whylen, "the stream refused it: %s (JetStream error %d)",
				 text ? text : natsStatus_GetText(st), (int)jerr);
		return -EREMOTEIO;
	}
	return nats_err(st);
}

/* Keep trying while the server is away, until a stop of at least `until`
 * (STOP_INTAKE for items, STOP_ALL for results: a graceful stop still
 * stores the results of what it drains). */
static int publish_patiently(struct pl_stream *s, const char *subj, const char *data,
			     size_t len, const char *const *headers, int until,
			     char *why, size_t whylen)
{
	unsigned wait = 50;
	int r;

	while ((r = setup(s)) < 0 || (r = publish(s, subj, data, len, headers, why, whylen)) < 0) {
		if ((r != -ENOTCONN && r != -ETIMEDOUT && r != -EAGAIN) ||
		    atomic_load(&s->stopping) >= until)
			return r;
		if (r == -EAGAIN && wait == 50)
			pl_log(LOG_NOTICE, "stream: no stream answers on %s (a cluster electing a "
			       "leader?); trying again", subj);
		if (r == -EAGAIN)
			remake_lost(s, NULL, NULL, 0, 0, &s->checked_us[2], CHECK_FAILING_US);
		usleep(wait * 1000);
		wait = wait < 800 ? wait * 2 : wait;
	}
	return 0;
}

void pl_stream_stop(struct pl_stream *s, bool fast)
{
	atomic_store(&s->stopping, fast ? STOP_ALL : STOP_INTAKE);
}

int pl_stream_publish_item(struct pl_stream *s, const char *job, uint64_t job_id,
			   unsigned long line, const char *source, const char *name,
			   char *why, size_t whylen)
{
	char id[512], *text;
	json_t *o;
	int r;

	o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "job", job, "owner", s->c->node,
		      "line", (json_int_t)line, "source", source, "name", name);
	if (!o)
		return -EILSEQ;		/* not UTF-8: cannot be JSON */
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return -ENOMEM;
	/* The server drops a second copy within its duplicate window: an owner
	 * that dies while publishing a job publishes it again at its restart. */
	snprintf(id, sizeof id, "%s/%s/%" PRIu64 "/%lu", s->c->node, job, job_id, line);
	r = publish_patiently(s, s->items_subj, text, strlen(text),
			      (const char *const[]){ "Nats-Msg-Id", id, NULL }, STOP_INTAKE,
			      why, whylen);
	free(text);
	if (r == 0)
		atomic_fetch_add(&s->published, 1);
	return r;
}

static int dead_letter(struct pl_stream *s, natsMsg *m, uint64_t seq, const char *why)
{
	char seqs[32];
	int r;

	snprintf(seqs, sizeof seqs, "%" PRIu64, seq);
	r = publish_patiently(s, s->dead_subj, natsMsg_GetData(m),
			      (size_t)natsMsg_GetDataLength(m),
			      (const char *const[]){ "Pipelined-Reason", why,
						     "Pipelined-Stream-Seq", seqs, NULL }, STOP_ALL,
			      NULL, 0);
	if (r < 0)
		pl_log_errno(LOG_ERR, -r, "stream: cannot dead-letter sequence %s (%s): %s", seqs, why,
			     strerror(-r));
	else {
		pl_log(LOG_WARNING, "stream: sequence %s dead-lettered to %s: %s", seqs, s->dead_subj,
		       why);
		atomic_fetch_add(&s->dead, 1);
	}
	return r;
}

/* A result record to the owner of an item; why the server would not take
 * it in err, when it said. */
static int publish_record(struct pl_stream *s, const char *owner, const char *job,
			  const char *rec, char *err, size_t errlen)
{
	char subj[SUBJECT_MAX];

	snprintf(subj, sizeof subj, "%s.results.%s", s->c->subject, owner);
	return publish_patiently(s, subj, rec, strlen(rec),
				 (const char *const[]){ "Pipelined-Job", job, NULL }, STOP_ALL,
				 err, errlen);
}

static char *format_result(const struct pl_item *it, bool ok, const char *why)
{
	return pl_record_format(it, ok, why, it->fed_us ? (pl_now_us() - it->fed_us) / 1000 : 0);
}

static int publish_result(struct pl_stream *s, const char *owner, const char *job,
			  const struct pl_item *it, bool ok, const char *why)
{
	char *rec = format_result(it, ok, why);
	int r;

	if (!rec)
		return -ENOMEM;
	r = publish_record(s, owner, job, rec, NULL, 0);
	free(rec);
	return r;
}

/* ---- items: from a message to an item and back ------------------------- */

static void msg_free(struct msg *m)
{
	natsMsg_Destroy(m->m);
	free(m->job);
	free(m->owner);
	free(m->rec);
	free(m);
}


static void flight_add(struct pl_stream *s, struct msg *m)
{
	m->lease_us = pl_now_us();
	pthread_mutex_lock(&s->lock);
	m->next = &s->flight;
	m->prev = s->flight.prev;
	m->prev->next = m;
	s->flight.prev = m;
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_add(&s->in_flight, 1);
}

static void flight_del(struct pl_stream *s, struct msg *m)
{
	pthread_mutex_lock(&s->lock);
	m->prev->next = m->next;
	m->next->prev = m->prev;
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_sub(&s->in_flight, 1);
}

/* How long an item whose result (or failure, or dead letter) the server
 * would not store waits before it comes again: a window doubling with its deliveries, so that a denial
 * or a full stream is not met again in a tight loop, up to
 * NAK_DELAY_MAX_MS (stream.max_deliver of them dead-letter it: after half
 * an hour to an hour at the default).  A random point in the window's
 * second half: daemons denied together (one permissions change, one full
 * stream) do not all come back at the same instant, and none sooner than
 * half the window (backoff.c's full jitter would let some retry almost at
 * once). */
static int64_t backoff_ms(uint64_t delivered)
{
	static _Thread_local uint64_t rng;
	int64_t ms = NAK_DELAY_MS;

	if (!rng)
		pl_backoff_seed(&rng);
	for (uint64_t i = 1; i < delivered && ms < NAK_DELAY_MAX_MS; i++)
		ms *= 2;
	if (ms > NAK_DELAY_MAX_MS)
		ms = NAK_DELAY_MAX_MS;
	return ms / 2 + (int64_t)(pl_backoff_random(&rng) % (uint64_t)(ms / 2 + 1));
}

/* A message that will never run: failed to its owner if it has one, dead
 * letter if not or if its failure cannot be stored; then terminated.
 * When neither could be stored (the stream full, a subject denied, a
 * stop), it is given back to come again after a while, never terminated:
 * that would lose it without a trace.  Given back often enough it reaches
 * stream.max_deliver, and bury() deletes it before it dead-letters it,
 * which makes the room a full stream lacked.  lettered: it was
 * dead-lettered already (condemned by the crash guard). */
static void refuse(struct pl_stream *s, struct msg *m, struct pl_item *it, const char *why,
		   bool lettered)
{
	int r = -ENOENT;

	if (m->owner && m->job && it->line) {
		pl_log(LOG_WARNING, "stream: job %s line %lu from %s: %s", m->job, it->line, m->owner,
		       why);
		r = publish_result(s, m->owner, m->job, it, false, why);
	}
	if (r < 0 && !lettered && dead_letter(s, m->m, m->seq, why) < 0) {
		int64_t ms = backoff_ms(m->delivered);

		pl_log(LOG_ERR, "stream: sequence %" PRIu64 " stays in the stream: neither its "
		       "failure nor its dead letter could be stored; it comes again in %.1f s",
		       m->seq, (double)ms / 1000);
		natsMsg_NakWithDelay(m->m, ms, NULL);
		return;
	}
	natsMsg_Term(m->m, NULL);
	atomic_fetch_add(&s->acked, 1);
}

/* The item at seq is done with (it ran and came back, or it was condemned
 * and dead-lettered): the guard names it no more. */
static void acquit(struct pl_stream *s, uint64_t seq)
{
	pthread_mutex_lock(&s->lock);
	if (s->condemned == seq)
		s->condemned = 0;
	if (s->prior_seq == seq)
		s->prior_seq = 0;
	if (s->gs.suspect == seq) {
		s->gs.suspect = 0;
		s->gs.crashes = 0;
		pl_crashguard_write(s->guard, &s->gs);
	}
	pthread_mutex_unlock(&s->lock);
}

/* One delivered message into an item, or handled here.  NULL if handled. */
static struct pl_item *take_msg(struct pl_stream *s, natsMsg *nm, uint64_t *delivered)
{
	struct msg *m = calloc(1, sizeof *m);
	struct pl_item *it = pl_item_new();
	jsMsgMetaData *meta = NULL;
	char why[256], reason[64];
	bool lettered = false;
	const char *bad;

	if (!m || !it) {
		natsMsg_Nak(nm, NULL);
		natsMsg_Destroy(nm);
		free(m);
		pl_item_free(it);
		return NULL;
	}
	m->s = s;
	m->m = nm;
	if (natsMsg_GetMetaData(&meta, nm) == NATS_OK) {
		m->seq = meta->Sequence.Stream;
		m->delivered = meta->NumDelivered;
		jsMsgMetaData_Destroy(meta);
	}
	*delivered = m->delivered;
	atomic_fetch_add(&s->pulled, 1);
	it->intake = &stream_intake;
	it->origin = m;
	bad = pl_streammsg_parse_item(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm),
				   &m->owner, &m->job, it, why, sizeof why);
	it->job_name = m->job;
	if (!bad && m->seq && m->seq == s->condemned) {
		snprintf(reason, sizeof reason, "crashed the daemon %u times", s->prior_crashes);
		lettered = dead_letter(s, nm, m->seq, reason) == 0;
		if (lettered)
			acquit(s, m->seq);	/* it is gone: no later restart may blame it */
		bad = reason;
	}
	if (bad) {
		refuse(s, m, it, bad, lettered);
		msg_free(m);
		it->origin = NULL;
		pl_item_free(it);
		return NULL;
	}
	if (m->delivered > 1) {
		it->alone = true;	/* it may have crashed a daemon */
		atomic_fetch_add(&s->redelivered, 1);
	}
	flight_add(s, m);
	return it;
}

/* The rule of pulling one at a time (see the top), after each message
 * pulled (delivered 0: its metadata could not be read: no news). */
static void careful_after(struct pl_stream *s, uint64_t delivered)
{
	uint64_t now = pl_now_us();

	if (delivered > 1) {
		if (!s->careful)
			pl_log(LOG_INFO, "stream: an item came again; pulling one at a time until "
			       "the redeliveries are through");
		s->careful = true;
		s->careful_since_us = now;
	} else if (delivered == 1 && s->careful &&
		   now - s->careful_since_us >= (uint64_t)(s->c->ack_wait * 1e6)) {
		s->careful = false;
		pl_log(LOG_INFO, "stream: no more redeliveries; pulling as many as there is room for");
	}
}

int pl_stream_pull(struct pl_stream *s, size_t max, int timeout_ms,
		   struct pl_item **items, size_t *n)
{
	natsMsgList list = { 0 };
	jsErrCode jerr = 0;
	natsStatus st;
	size_t nfresh = 0;
	int r;

	*n = 0;
	if ((r = setup(s)) < 0) {
		usleep((useconds_t)timeout_ms * 1000);
		return r;
	}
	if (s->careful)
		max = 1;
	st = natsSubscription_Fetch(&list, s->work_sub, (int)max, timeout_ms, &jerr);
	if (st != NATS_OK)
		remake_lost(s, s->items_subj, s->c->consumer, s->c->max_ack_pending,
			    s->c->max_deliver, &s->checked_us[0],
			    st == NATS_TIMEOUT ? CHECK_QUIET_US : CHECK_FAILING_US);
	if (st == NATS_TIMEOUT)
		return 0;
	if (st != NATS_OK) {
		r = nats_err(st);
		if (r != -ENOTCONN)
			pl_log(LOG_WARNING, "stream: fetching items: %s", natsStatus_GetText(st));
		usleep((useconds_t)timeout_ms * 1000);
		return r;
	}
	for (int i = 0; i < list.Count; i++) {
		natsMsg *m = list.Msgs[i];
		struct pl_item *it;
		uint64_t delivered = 0;

		list.Msgs[i] = NULL;	/* ours now */
		if ((it = take_msg(s, m, &delivered)) && !it->alone) {
			/* first deliveries before redelivered ones (see the top) */
			memmove(items + nfresh + 1, items + nfresh,
				(*n - nfresh) * sizeof *items);
			items[nfresh++] = it;
			(*n)++;
		} else if (it) {
			items[(*n)++] = it;
		}
		careful_after(s, delivered);
	}
	natsMsgList_Destroy(&list);
	return 0;
}

/* ---- the worker's sinks (it->intake) ----------------------------------- */


/* In the publisher thread: store a finished item's result, then ack the
 * item (or give it back). */
static void settle(struct pl_stream *s, struct msg *m)
{
	struct pl_item *it = m->it;
	char err[512] = "";
	int r;

	r = m->rec ? publish_record(s, m->owner, m->job, m->rec, err, sizeof err) : -ENOMEM;
	/* Denied, or refused by a limit of the stream (full with discard new,
	 * a message too big): at once again would meet the same answer. */
	if (r == -EACCES || r == -EREMOTEIO) {
		int64_t ms = backoff_ms(m->delivered);

		pl_log_item(LOG_ERR, it, NULL, -r, "cannot publish its result: %s; it will run "
			    "again in %.1f s", *err ? err : strerror(-r), (double)ms / 1000);
		natsMsg_NakWithDelay(m->m, ms, NULL);
	} else if (r < 0) {
		pl_log_item(LOG_ERR, it, NULL, -r, "cannot publish its result: %s; it will run again",
			    strerror(-r));
		natsMsg_Nak(m->m, NULL);
	} else if (natsMsg_Ack(m->m, NULL) == NATS_OK) {
		atomic_fetch_add(&s->acked, 1);
	}
	flight_del(s, m);
	it->origin = NULL;
	it->job_name = NULL;
	msg_free(m);
	pl_item_free(it);
}

static void *publisher_main(void *arg)
{
	struct pl_stream *s = arg;

	pthread_mutex_lock(&s->out_lock);
	for (;;) {
		struct msg *m;

		while (!s->out_head && !s->out_quit)
			pthread_cond_wait(&s->out_cond, &s->out_lock);
		if (!(m = s->out_head))
			break;
		if (!(s->out_head = m->out_next))
			s->out_tail = &s->out_head;
		pthread_mutex_unlock(&s->out_lock);
		settle(s, m);
		pthread_mutex_lock(&s->out_lock);
		s->nout--;
		pthread_cond_broadcast(&s->out_cond);	/* pl_stream_flush */
	}
	pthread_mutex_unlock(&s->out_lock);
	return NULL;
}

void pl_stream_flush(struct pl_stream *s)
{
	pthread_mutex_lock(&s->out_lock);
	while (s->nout)
		pthread_cond_wait(&s->out_cond, &s->out_lock);
	pthread_mutex_unlock(&s->out_lock);
}

/* In the worker's thread: the result goes to the outbox (see the top). */
static void finish(struct pl_item *it, bool ok, const char *why)
{
	struct msg *m = it->origin;
	struct pl_stream *s = m->s;

	m->rec = format_result(it, ok, why);	/* NULL: settle() gives it back */
	if (it->alone && m->seq)
		acquit(s, m->seq);		/* it did not crash us */
	pl_item_free_data(it);
	pl_item_free_outputs(it);
	m->it = it;
	m->out_next = NULL;
	pthread_mutex_lock(&s->out_lock);
	*s->out_tail = m;
	s->out_tail = &m->out_next;
	s->nout++;
	pthread_cond_broadcast(&s->out_cond);
	pthread_mutex_unlock(&s->out_lock);
}

static void stream_done(struct pl_item *it)
{
	finish(it, true, NULL);
}

static void stream_failed(struct pl_item *it, int err, const char *why)
{
	finish(it, false, why ? why : err ? strerror(err < 0 ? -err : err) : "failed");
}

/*
 * Never entered a stage (a stop): back to the server for someone else, at
 * once.  A nak alone would raise the item's delivery count, and an item
 * delivered again runs alone wherever it lands (it may have crashed a
 * daemon): the daemons taking over from a stopped one would run its items
 * one at a time.  So an item that is no suspect goes back as a fresh copy
 * of its message, published before the original is acked: a failure in
 * between leaves two copies (the owner records one line once), never none.
 * A suspect, or a copy the server does not take now, is nakked.
 */
static void stream_requeue(struct pl_item *it)
{
	struct msg *m = it->origin;
	struct pl_stream *s = m->s;
	char id[64];

	/* One copy the server did not take (it may hang up to the publish
	 * timeout) and the rest of a stop's items are nakked: the main loop
	 * gives them back, and must not wait that long for each. */
	snprintf(id, sizeof id, "given-back/%" PRIu64, m->seq);
	if (!it->alone && m->seq && atomic_load(&s->connected) && !atomic_load(&s->copies_fail) &&
	    publish_patiently(s, s->items_subj, natsMsg_GetData(m->m),
			      (size_t)natsMsg_GetDataLength(m->m),
			      (const char *const[]){ "Nats-Msg-Id", id, NULL }, STOP_INTAKE,
			      NULL, 0) == 0) {
		natsMsg_Ack(m->m, NULL);
	} else {
		if (!it->alone)
			atomic_store(&s->copies_fail, true);
		natsMsg_Nak(m->m, NULL);
	}
	flight_del(m->s, m);
	it->origin = NULL;
	it->job_name = NULL;
	msg_free(m);
	pl_item_free(it);
}

static int stream_alone(struct pl_item *it)
{
	struct msg *m = it->origin;
	struct pl_stream *s = m->s;
	int r;

	pthread_mutex_lock(&s->lock);
	if (s->gs.suspect != m->seq)
		s->gs.crashes = m->seq == s->prior_seq ? s->prior_crashes : 0;
	s->gs.suspect = m->seq;
	r = pl_crashguard_write(s->guard, &s->gs);
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		pl_log_errno(LOG_ERR, -r, "stream: cannot write the crash guard: %s", strerror(-r));
	else
		pl_log_item(LOG_NOTICE, it, NULL, 0, "delivery %" PRIu64 " of stream sequence %"
			    PRIu64 ", on disk as the crash suspect", m->delivered, m->seq);
	return r;
}

static const struct pl_intake stream_intake = {
	.done = stream_done,
	.failed = stream_failed,
	.requeue = stream_requeue,
	.alone = stream_alone,
};

void pl_stream_tick(struct pl_stream *s)
{
	uint64_t now = pl_now_us(), every = (uint64_t)(s->c->ack_wait * 1e6 / 3);

	pthread_mutex_lock(&s->lock);
	for (struct msg *m = s->flight.next; m != &s->flight; m = m->next)
		if (now - m->lease_us >= every && natsMsg_InProgress(m->m, NULL) == NATS_OK)
			m->lease_us = now;
	pthread_mutex_unlock(&s->lock);
}

/* ---- MaxDeliver: the backstop across daemons --------------------------- */

/* In libnats' thread: only note the sequence; the results thread acts. */
static void on_advisory(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *ud)
{
	struct pl_stream *s = ud;
	json_t *o = json_loadb(natsMsg_GetData(nm), (size_t)natsMsg_GetDataLength(nm), 0, NULL);
	json_int_t seq = json_integer_value(json_object_get(o, "stream_seq"));

	(void)nc;
	(void)sub;
	pthread_mutex_lock(&s->lock);
	if (seq > 0 && s->ndead_seqs == s->dead_cap) {
		size_t cap = s->dead_cap ? 2 * s->dead_cap : 64;
		uint64_t *v = realloc(s->dead_seqs, cap * sizeof *v);

		if (v) {
			s->dead_seqs = v;
			s->dead_cap = cap;
		} else {
			pl_log(LOG_ERR, "stream: out of memory: stream sequence %" PRIu64 " reached "
			       "max_deliver and stays in the stream", (uint64_t)seq);
		}
	}
	if (seq > 0 && s->ndead_seqs < s->dead_cap)
		s->dead_seqs[s->ndead_seqs++] = (uint64_t)seq;
	pthread_mutex_unlock(&s->lock);
	json_decref(o);
	natsMsg_Destroy(nm);
}

/* A message that reached MaxDeliver stays in the stream, undelivered: it
 * is dead-lettered, failed to its owner and deleted. */
static void bury(struct pl_stream *s, uint64_t seq)
{
	struct msg m = { .s = s, .seq = seq };
	struct pl_item *it = pl_item_new();
	char why[256], reason[192];
	natsStatus st;

	if (!it)
		return;
	st = js_GetMsg(&m.m, s->js, s->c->stream, seq, NULL, NULL);
	if (st != NATS_OK) {
		pl_item_free(it);
		return;		/* another daemon buried it */
	}
	snprintf(reason, sizeof reason, "delivered %d times without a result (stream.max_deliver): "
		 "it crashed or stalled every daemon that took it, or its result could not be "
		 "stored", s->c->max_deliver);
	pl_streammsg_parse_item(natsMsg_GetData(m.m), (size_t)natsMsg_GetDataLength(m.m), &m.owner,
			     &m.job, it, why, sizeof why);
	if (js_DeleteMsg(s->js, s->c->stream, seq, NULL, NULL) == NATS_OK) {
		dead_letter(s, m.m, seq, reason);
		if (m.owner && m.job && it->line)
			publish_result(s, m.owner, m.job, it, false, reason);
	}
	natsMsg_Destroy(m.m);
	free(m.job);
	free(m.owner);
	pl_item_free(it);
}

static void bury_advised(struct pl_stream *s)
{
	uint64_t *seqs;
	size_t n;

	pthread_mutex_lock(&s->lock);
	seqs = s->dead_seqs;
	n = s->ndead_seqs;
	s->dead_seqs = NULL;
	s->ndead_seqs = s->dead_cap = 0;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++)
		bury(s, seqs[i]);
	free(seqs);
}

/* ---- the owner's results ----------------------------------------------- */


int pl_stream_take_results(struct pl_stream *s, size_t max, int timeout_ms,
			   pl_stream_record_fn *record, void *ud)
{
	natsMsgList list = { 0 };
	natsStatus st;
	int r;

	if ((r = setup(s)) < 0) {
		usleep((useconds_t)timeout_ms * 1000);
		return r;
	}
	bury_advised(s);
	st = natsSubscription_Fetch(&list, s->results_sub, (int)max, timeout_ms, NULL);
	if (st != NATS_OK)
		remake_lost(s, s->mine_subj, s->results_durable, -1, -1, &s->checked_us[1],
			    st == NATS_TIMEOUT ? CHECK_QUIET_US : CHECK_FAILING_US);
	if (st == NATS_TIMEOUT)
		return 0;
	if (st != NATS_OK) {
		usleep((useconds_t)timeout_ms * 1000);
		return nats_err(st);
	}
	for (int i = 0; i < list.Count; i++) {
		natsMsg *m = list.Msgs[i];
		const char *job = NULL, *why, *data = natsMsg_GetData(m);
		size_t len = (size_t)natsMsg_GetDataLength(m);
		unsigned long line = 0;
		bool ok = false;

		if (natsMsgHeader_Get(m, "Pipelined-Job", &job) != NATS_OK)
			job = NULL;
		if ((why = pl_streammsg_parse_result(job, data, len, &line, &ok))) {
			pl_log(LOG_WARNING, "stream: a message on %s is not a result (%s); dropped",
			       s->mine_subj, why);
			natsMsg_Term(m, NULL);
			continue;
		}
		r = record(ud, job, line, ok, data, len);
		if (r == -EAGAIN) {
			natsMsg_NakWithDelay(m, NAK_DELAY_MS, NULL);
			continue;
		}
		if (r == -EINVAL)	/* the spool said why */
			atomic_fetch_add(&s->rejected, 1);
		else if (r < 0) {
			pl_log(LOG_WARNING, "stream: a result for job %s line %lu, which this daemon does "
			       "not have; dropped", job, line);
			atomic_fetch_add(&s->rejected, 1);
		} else
			atomic_fetch_add(&s->results, 1);
		natsMsg_Ack(m, NULL);
	}
	natsMsgList_Destroy(&list);
	return 0;
}

void pl_stream_stats(struct pl_stream *s, struct pl_stream_stats *st)
{
	memset(st, 0, sizeof *st);
	st->connected = atomic_load(&s->connected);
	if (st->connected && s->nc) {
		char url[256] = "";

		natsConnection_GetConnectedUrl(s->nc, url, sizeof url);
		pl_log_redact_url(url, st->server, sizeof st->server);
	}
	st->pulled = atomic_load(&s->pulled);
	st->in_flight = atomic_load(&s->in_flight);
	st->acked = atomic_load(&s->acked);
	st->redelivered = atomic_load(&s->redelivered);
	st->dead = atomic_load(&s->dead);
	st->published = atomic_load(&s->published);
	st->results = atomic_load(&s->results);
	st->rejected = atomic_load(&s->rejected);
}
