/*
 * net.h - the listening socket. ditd binds it itself (rather than letting
 * libmicrohttpd do it) so that port 0 works and the bound port is known.
 */
#ifndef DITD_DAEMON_NET_H
#define DITD_DAEMON_NET_H

#include <stddef.h>

/* "host:port", "[v6]:port" or ":port" -> a bound, listening, non-blocking
 * socket (returned), or -errno with err saying what to change. *port gets
 * the port bound. */
int net_listen(const char *spec, int *port, char *err, size_t errlen);

#endif /* DITD_DAEMON_NET_H */
