/*
 * netguard.h — the SSRF address classifier.
 *
 * Pure functions, no I/O: the download and upload stages call them from
 * libcurl's open-socket callback with the address actually about to be
 * connected, so redirects and DNS rebinding are covered too.
 */
#ifndef PL_NETGUARD_H
#define PL_NETGUARD_H

#include <stdbool.h>
#include <sys/socket.h>

/* NULL if the address is public; else a static reason such as "loopback",
 * "private", "link-local", "CGNAT", "multicast", "unspecified", "reserved".
 * IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible, NAT64 (64:ff9b::/96),
 * 6to4 (2002::/16) and Teredo forms are judged by the IPv4 inside. */
const char *pl_netguard_classify(const struct sockaddr *sa, socklen_t len);

#endif
