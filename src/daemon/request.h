/*
 * request.h - a generation request as the API accepts it: JSON body ->
 * struct gen_request, with every field type- and range-checked. A refusal
 * names the field and says what would be accepted, so the client can fix
 * the request from the message alone.
 */
#ifndef DITD_DAEMON_REQUEST_H
#define DITD_DAEMON_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ditd.h"

struct gen_request {
    int class_id;
    double cfg;
    int steps;
    enum ditd_sampler sampler;
    char sampler_name[16];  /* canonical (lower case), or the default's name */
    bool ddim_spacing;
    double eta;
    int64_t seed;           /* -1 = the daemon picks one */
    int n;                  /* images */
    uint32_t index;         /* noise index of the first image; image k uses index + k */
    bool stream;
    int preview;            /* a preview every `preview` steps; 0 = none */
    int deadline_ms;        /* 0 = the configured request_timeout */
};

struct request_limits {
    int num_classes;
    int max_images;
    int max_steps;
    int default_steps;
    double default_cfg;
    double max_cfg;
    enum ditd_sampler default_sampler;
    const char *default_sampler_name;
    /* Class id for a name or decimal string, -1 when unknown. */
    int (*class_lookup)(void *arg, const char *name);
    void *class_arg;
    /* Sampler by name (any case): 0 or negative. */
    int (*sampler_parse)(const char *name, enum ditd_sampler *out);
    /* Its canonical name, stored in sampler_name; NULL keeps the name as given. */
    const char *(*sampler_name)(enum ditd_sampler s);
};

#define REQUEST_FIELD_LEN 32

/* Parse and check `body` (len bytes, need not be NUL-terminated). On error
 * returns -EINVAL, `field` holds the offending field ("" when the body as a
 * whole is wrong) and `err` a sentence for the client. */
int request_parse(struct gen_request *r, const char *body, size_t len,
                  const struct request_limits *lim, char *field, size_t fieldlen,
                  char *err, size_t errlen);

/* The engine's parameters of the k-th image (0 .. n-1) of a request. */
void request_to_params(const struct gen_request *r, uint64_t seed, int k, struct ditd_params *p);

/* DiT rows one step of one image of this request takes. */
static inline int request_rows(const struct gen_request *r)
{
    return r->cfg > 1.0 ? 2 : 1;
}

#endif /* DITD_DAEMON_REQUEST_H */
