/*
 * web.c - the web page (docs/web.md): GET / and its files under /ui/,
 * served from the copies built into the binary (web_assets.c, generated
 * from web/ at build time), so the page loads nothing from anywhere else.
 * The Content-Security-Policy allows this origin only: no inline script,
 * no other hosts, no framing. index.html is revalidated on every load
 * (ETag), the files it names carry their hash in the URL and are cached
 * for a year. `web_ui = no` turns the page off (404).
 */
#include <string.h>

#include "api.h"
#include "web_assets.h"

#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " \
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const struct web_asset *find(const char *url)
{
    if (strcmp(url, "/favicon.ico") == 0)
        url = "/ui/icon.svg";
    for (int i = 0; i < web_nassets; i++)
        if (strcmp(web_assets[i].path, url) == 0)
            return &web_assets[i];
    return NULL;
}

/* If-None-Match holds our ETag (any of a list, weak or strong, or *). */
static bool not_modified(struct http_req *r, const struct web_asset *a)
{
    const char *inm = http_header(r, "If-None-Match");

    return inm && (strcmp(inm, "*") == 0 || strstr(inm, a->etag));
}

void web_serve(struct server *s, struct http_req *r)
{
    const struct web_asset *a;

    if (!s->cfg.web_ui) {
        http_reply_error(r, 404, "not_found_error", NULL,
                         "the web page is turned off on this server (web_ui = no); the API "
                         "works as usual (docs/api.md)");
        return;
    }
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        api_method_not_allowed(r, "GET, HEAD");
        return;
    }
    a = find(r->url);
    if (!a) {
        http_reply_error(r, 404, "not_found_error", NULL, "no file %.64s in the web page",
                         r->url);
        return;
    }
    http_add_header(r, "ETag", "%s", a->etag);
    http_add_header(r, "Cache-Control", "%s",
                    a->immutable ? "public, max-age=31536000, immutable" : "no-cache");
    http_add_header(r, "Content-Security-Policy", "%s", CSP);
    http_add_header(r, "X-Content-Type-Options", "nosniff");
    http_add_header(r, "Referrer-Policy", "no-referrer");
    if (not_modified(r, a))
        http_reply(r, 304, NULL, "", 0, false);
    else
        http_reply(r, 200, a->content_type, (void *)a->data, a->len, false);
}
