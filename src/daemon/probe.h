/*
 * probe.h - `ditd --probe`: the container health check. Slim images have
 * no curl, so the daemon's own binary asks GET /health/ready.
 */
#ifndef DITD_DAEMON_PROBE_H
#define DITD_DAEMON_PROBE_H

#include <stdbool.h>

#include "config.h"

/* 0 when the daemon configured by `c` (config file and flags) answers 200
 * on GET /health/ready, else 1 (with a reason on stderr). It sends the first
 * configured API key, so it works with public_health = no. A listen address
 * of 0.0.0.0 or [::] is probed on 127.0.0.1 or [::1]. The port comes from
 * port_file when one is configured and holds a port, because that is what
 * the daemon bound even if it was started with another --listen (a
 * container's HEALTHCHECK cannot see the ENTRYPOINT's flags); `listen_flag`
 * says the probe itself was given --listen, whose port then wins unless 0. */
int probe_run(const struct config *c, bool listen_flag);

#endif /* DITD_DAEMON_PROBE_H */
