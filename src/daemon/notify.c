/*
 * notify.c - sd_notify(3) by hand. The protocol is a single datagram, so a
 * socket is opened per message: notifications are rare (state changes and
 * watchdog pings every few seconds) and this keeps no state to get wrong.
 */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_send(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    socklen_t salen;
    size_t plen;
    ssize_t sent;
    int fd;
    int rc = 0;

    if (!path || !*path)
        return 0;
    plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
        return -EINVAL;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';   /* abstract namespace: no trailing NUL */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    do {
        sent = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
                      (struct sockaddr *)&sa, salen);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0)
        rc = -errno;
    close(fd);
    return rc;
}

int notify_sendf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return notify_send(buf);
}

uint64_t notify_watchdog_usec(void)
{
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    unsigned long long v;
    char *end;

    if (!usec || !*usec)
        return 0;
    /* WATCHDOG_PID names the process the watchdog is meant for; a child
     * that inherited the environment must not ping on its behalf. */
    if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    errno = 0;
    v = strtoull(usec, &end, 10);
    if (errno || *end || v == 0)
        return 0;
    return (uint64_t)v;
}
