/*
 * probe.c - a minimal HTTP/1.0 client for the health check (see probe.h).
 */
#include "probe.h"

#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int read_port_file(const char *path)
{
    FILE *f = fopen(path, "r");
    int port = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

int probe_run(const struct config *c)
{
    static const char req[] = "GET /health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n";
    char host[256], port[16], reply[64];
    const char *colon = strrchr(c->listen, ':');
    struct addrinfo hints, *res = NULL;
    struct pollfd pf;
    size_t hl;
    ssize_t n;
    int fd;

    if (!colon || (hl = (size_t)(colon - c->listen)) >= sizeof(host))
        return 1;
    memcpy(host, c->listen, hl);
    host[hl] = '\0';
    if (host[0] == '[') {
        memmove(host, host + 1, hl);
        host[strcspn(host, "]")] = '\0';
    }
    if (!*host || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(host, sizeof(host), "::1");
    snprintf(port, sizeof(port), "%s", colon + 1);
    if (atoi(port) == 0 && c->port_file[0])
        snprintf(port, sizeof(port), "%d", read_port_file(c->port_file));
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res) {
        fprintf(stderr, "probe: cannot resolve %s:%s\n", host, port);
        return 1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "probe: cannot connect to %s:%s\n", host, port);
        freeaddrinfo(res);
        if (fd >= 0)
            close(fd);
        return 1;
    }
    freeaddrinfo(res);
    n = send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
    pf.fd = fd;
    pf.events = POLLIN;
    if (n != (ssize_t)sizeof(req) - 1 || poll(&pf, 1, 5000) != 1 ||
        (n = recv(fd, reply, sizeof(reply) - 1, 0)) < 12) {
        fprintf(stderr, "probe: no answer from %s:%s\n", host, port);
        close(fd);
        return 1;
    }
    close(fd);
    reply[n] = '\0';
    if (strncmp(reply + 9, "200", 3) != 0) {
        fprintf(stderr, "probe: %.*s\n", (int)strcspn(reply, "\r\n"), reply);
        return 1;
    }
    return 0;
}
