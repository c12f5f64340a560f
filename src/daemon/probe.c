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

#include "auth.h"

static int read_port_file(const char *path)
{
    FILE *f = fopen(path, "r");
    int port = 0;

    if (!f)
        return 0;
    if (fscanf(f, "%d", &port) != 1 || port < 1 || port > 65535)
        port = 0;
    fclose(f);
    return port;
}

/* Host and port to connect to for the configured listen address: wildcard
 * addresses are reached on loopback. The port file wins when the address
 * did not come from the probe's own command line (see probe.h). */
static int probe_address(const struct config *c, bool listen_flag, char *host, size_t hostlen,
                         char *port, size_t portlen)
{
    const char *colon = strrchr(c->listen, ':');
    size_t hl;
    int file_port = c->port_file[0] ? read_port_file(c->port_file) : 0;

    if (!colon || (hl = (size_t)(colon - c->listen)) >= hostlen)
        return -1;
    memcpy(host, c->listen, hl);
    host[hl] = '\0';
    if (host[0] == '[') {
        memmove(host, host + 1, hl);
        host[strcspn(host, "]")] = '\0';
    }
    if (!*host || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, hostlen, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(host, hostlen, "::1");
    snprintf(port, portlen, "%s", colon + 1);
    if (file_port > 0 && (!listen_flag || atoi(port) == 0))
        snprintf(port, portlen, "%d", file_port);
    return 0;
}

int probe_run(const struct config *c, bool listen_flag)
{
    char host[256], port[16], reply[64], req[512];
    struct addrinfo hints, *res = NULL;
    struct auth keys = { 0 };
    struct pollfd pf;
    char err[256];
    int reqlen;
    ssize_t n;
    int fd;

    if (probe_address(c, listen_flag, host, sizeof(host), port, sizeof(port)) < 0) {
        fprintf(stderr, "probe: listen '%s' is not host:port\n", c->listen);
        return 1;
    }
    /* With public_health = no the endpoint wants a key: any configured one. */
    if (auth_load(&keys, c, err, sizeof(err)) < 0) {
        fprintf(stderr, "probe: %s\n", err);
        return 1;
    }
    reqlen = snprintf(req, sizeof(req), "GET /health/ready HTTP/1.0\r\nHost: localhost\r\n%s%.*s%s\r\n",
                      keys.nkeys ? "Authorization: Bearer " : "",
                      keys.nkeys ? (int)keys.key_len[0] : 0, keys.nkeys ? keys.keys[0] : "",
                      keys.nkeys ? "\r\n" : "");
    auth_free(&keys);
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
    n = send(fd, req, (size_t)reqlen, MSG_NOSIGNAL);
    explicit_bzero(req, sizeof(req));
    pf.fd = fd;
    pf.events = POLLIN;
    if (n != reqlen || poll(&pf, 1, 5000) != 1 ||
        (n = recv(fd, reply, sizeof(reply) - 1, 0)) < 12) {
        fprintf(stderr, "probe: no answer from %s:%s\n", host, port);
        close(fd);
        return 1;
    }
    close(fd);
    reply[n] = '\0';
    if (strncmp(reply + 9, "200", 3) != 0) {
        fprintf(stderr, "probe: %s:%s answered %.*s\n", host, port, (int)strcspn(reply, "\r\n"),
                reply);
        return 1;
    }
    return 0;
}
