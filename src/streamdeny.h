/*
 * streamdeny.h — the subjects a NATS server has lately denied this user,
 * from its asynchronous "Permissions Violation" errors (streamdeny.c says
 * why this is its own module).
 */
#ifndef PL_STREAMDENY_H
#define PL_STREAMDENY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PL_STREAMDENY_SUBJECT_MAX 256
#define PL_STREAMDENY_TEXT_MAX 256
#define PL_STREAMDENY_SLOTS 8
/* A subject denied us lately is not tried again this soon: the denial
 * comes only as an asynchronous -ERR, the publish itself just times out,
 * so each try costs a whole timeout. */
#define PL_STREAMDENY_HOLD_US (60 * 1000000ULL)
/* A denial is logged once, and again this often while it lasts. */
#define PL_STREAMDENY_LOG_US (600 * 1000000ULL)

struct pl_streamdeny {
	pthread_mutex_t lock;	/* the error handler's thread and publishers' */
	struct pl_streamdeny_slot {
		char subj[PL_STREAMDENY_SUBJECT_MAX], text[PL_STREAMDENY_TEXT_MAX];
		bool publish;		/* or subscribe */
		uint64_t at_us, logged_us;
		unsigned long since_logged;
	} slot[PL_STREAMDENY_SLOTS];
};

/* What a noted denial says, for the log line. */
struct pl_streamdeny_note {
	char subj[PL_STREAMDENY_SUBJECT_MAX];
	bool publish;
	bool say;		/* log it now */
	unsigned long times;	/* denials since it was last logged, if it was */
};

void pl_streamdeny_init(struct pl_streamdeny *d);
void pl_streamdeny_finalise(struct pl_streamdeny *d);
/* The server's words ("Permissions Violation for Publish to "SUBJ"", or
 * "... Subscription to ..."), at now_us, noted under their subject, the
 * latest replacing the oldest; *out says whether to log it. */
void pl_streamdeny_add(struct pl_streamdeny *d, const char *text, uint64_t now_us,
		       struct pl_streamdeny_note *out);
/* Was publishing on subj denied less than PL_STREAMDENY_HOLD_US before
 * now_us?  If so, why (the server's words) in why, when given. */
bool pl_streamdeny_publish_denied(struct pl_streamdeny *d, const char *subj, uint64_t now_us,
				  char *why, size_t whylen);

#endif
