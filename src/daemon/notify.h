/*
 * notify.h - the systemd notification protocol without libsystemd: one
 * AF_UNIX datagram of newline-separated KEY=VALUE lines to $NOTIFY_SOCKET
 * (a leading '@' names an abstract socket). Without $NOTIFY_SOCKET every
 * call is a no-op that succeeds, so the daemon behaves the same outside
 * systemd.
 */
#ifndef DITD_DAEMON_NOTIFY_H
#define DITD_DAEMON_NOTIFY_H

#include <stdint.h>

/* Send `msg` (e.g. "READY=1\nSTATUS=serving"). 0 or -errno. */
int notify_send(const char *msg);
/* printf-style variant; the text is truncated at 1 KiB. */
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Watchdog interval in microseconds from $WATCHDOG_USEC (checked against
 * $WATCHDOG_PID when set), or 0 when the watchdog is off. */
uint64_t notify_watchdog_usec(void);

#endif /* DITD_DAEMON_NOTIFY_H */
