/*
 * probe.h - `ditd --probe`: the container health check. Slim images have
 * no curl, so the daemon's own binary asks GET /health/ready.
 */
#ifndef DITD_DAEMON_PROBE_H
#define DITD_DAEMON_PROBE_H

#include "config.h"

/* 0 when the daemon configured by `c` answers 200, else 1 (with a reason
 * on stderr). A listen address of 0.0.0.0 or :: is probed on loopback;
 * port 0 is read from port_file. */
int probe_run(const struct config *c);

#endif /* DITD_DAEMON_PROBE_H */
