/*
 * http.h — what the two libcurl stages (download, upload) share: libcurl's
 * process-wide state, owned by the daemon rather than by either stage.
 */
#ifndef PL_HTTP_H
#define PL_HTTP_H

/* Once, on the main thread, before any stage context or worker exists;
 * pl_http_global_cleanup() once after the last is gone.  libcurl counts
 * the pairs, so a test may make one per fixture.  0 or -EIO (logged). */
int  pl_http_global_init(void);
void pl_http_global_cleanup(void);

#endif
