/*
 * http.c — libcurl's global state for the download and upload stages.
 *
 * curl_global_init() must run before any CURL handle is made, and it is
 * not thread-safe against other threads using libcurl (or the TLS and
 * resolver libraries it sets up), so it belongs to whoever starts the
 * workers: the daemon calls this pair once around all stage contexts
 * (daemon.c), the stage tests around theirs (tests/testutil.c).  Neither
 * stage does it for the other: upload used to rely on download having
 * initialised libcurl first, which held only while both were built in the
 * same order.
 */
#include <errno.h>

#include <curl/curl.h>

#include "http.h"
#include "log.h"

int pl_http_global_init(void)
{
	CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (rc != CURLE_OK) {
		pl_log(LOG_ERR, "curl_global_init: %s", curl_easy_strerror(rc));
		return -EIO;
	}
	return 0;
}

void pl_http_global_cleanup(void)
{
	curl_global_cleanup();
}
