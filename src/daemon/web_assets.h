/*
 * web_assets.h - the web page's files, built into the binary by web/embed.py
 * (a generated web_assets.c) so the page needs no files at run time.
 */
#ifndef DITD_DAEMON_WEB_ASSETS_H
#define DITD_DAEMON_WEB_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

struct web_asset {
    const char *path;           /* "/" or "/ui/NAME" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag;           /* quoted, strong */
    bool immutable;             /* its URL carries its hash: cache for a year */
};

extern const struct web_asset web_assets[];
extern const int web_nassets;

#endif /* DITD_DAEMON_WEB_ASSETS_H */
