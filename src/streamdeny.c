/*
 * streamdeny.c — see streamdeny.h.
 *
 * Why it is built this way: a NATS server does not answer a publish it
 * denies by permissions; it drops the message and sends an asynchronous
 * -ERR, which libnats hands to the connection's error handler while the
 * publisher waits out its timeout.  The only way to tell a denial from an
 * outage (which stream.c retries for ever) is to remember what the error
 * handler heard, by subject, and to look when a publish times out.  A
 * subject so denied is then not tried for a minute (each try would cost
 * a whole timeout), and the denial is logged once, then every ten
 * minutes with a count, not once per item.
 *
 * Why apart from stream.c: it is bookkeeping on the server's words and a
 * clock, with no connection, so it is tested on a fake clock
 * (test_stream.c); stream.c only feeds it and logs what it says.
 */
#include <stdio.h>
#include <string.h>

#include "streamdeny.h"

void pl_streamdeny_init(struct pl_streamdeny *d)
{
	memset(d, 0, sizeof *d);
	pthread_mutex_init(&d->lock, NULL);
}

void pl_streamdeny_finalise(struct pl_streamdeny *d)
{
	pthread_mutex_destroy(&d->lock);
}

/* The subject the server's words name, and whether publishing on it (or
 * subscribing to it) was denied; "" when they name none. */
static bool subject_of(const char *text, char *subj, size_t len)
{
	const char *p, *end;
	bool publish = true;

	if ((p = strstr(text, "Publish to "))) {
		p += strlen("Publish to ");
	} else if ((p = strstr(text, "Subscription to "))) {
		p += strlen("Subscription to ");
		publish = false;
	} else {
		p = "";
	}
	p += *p == '"';
	end = p + strcspn(p, "\" ");
	snprintf(subj, len, "%.*s", (int)(end - p), p);
	return publish;
}

/* The slot of (publish, subj), or the oldest to take its place, emptied. */
static struct pl_streamdeny_slot *slot_for(struct pl_streamdeny *d, bool publish,
					   const char *subj)
{
	struct pl_streamdeny_slot *s = NULL;

	for (size_t i = 0; i < PL_STREAMDENY_SLOTS; i++) {
		struct pl_streamdeny_slot *e = &d->slot[i];

		if (e->at_us && e->publish == publish && strcmp(e->subj, subj) == 0)
			return e;
		if (!s || e->at_us < s->at_us)
			s = e;
	}
	memset(s, 0, sizeof *s);
	snprintf(s->subj, sizeof s->subj, "%s", subj);
	s->publish = publish;
	return s;
}

void pl_streamdeny_add(struct pl_streamdeny *d, const char *text, uint64_t now_us,
		       struct pl_streamdeny_note *out)
{
	struct pl_streamdeny_slot *s;

	memset(out, 0, sizeof *out);
	out->publish = subject_of(text, out->subj, sizeof out->subj);
	pthread_mutex_lock(&d->lock);
	s = slot_for(d, out->publish, out->subj);
	snprintf(s->text, sizeof s->text, "%s", text);
	s->at_us = now_us;
	s->since_logged++;
	if (!s->logged_us || now_us - s->logged_us >= PL_STREAMDENY_LOG_US) {
		out->say = true;
		out->times = s->logged_us ? s->since_logged : 0;
		s->logged_us = now_us;
		s->since_logged = 0;
	}
	pthread_mutex_unlock(&d->lock);
}

bool pl_streamdeny_publish_denied(struct pl_streamdeny *d, const char *subj, uint64_t now_us,
				  char *why, size_t whylen)
{
	bool yes = false;

	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < PL_STREAMDENY_SLOTS && !yes; i++) {
		const struct pl_streamdeny_slot *s = &d->slot[i];

		if (s->at_us && s->publish && now_us - s->at_us < PL_STREAMDENY_HOLD_US &&
		    strcmp(s->subj, subj) == 0) {
			yes = true;
			if (why)
				snprintf(why, whylen, "the server denies this user publishing on "
					 "%s: %s", subj, s->text);
		}
	}
	pthread_mutex_unlock(&d->lock);
	return yes;
}
