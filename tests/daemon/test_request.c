/*
 * test_request.c - request validation: each refusal names its field.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "request.h"
#include "test.h"

static int lookup(void *arg, const char *name)
{
    (void)arg;
    if (strcasecmp(name, "sneaker") == 0)
        return 7;
    return -1;
}

static const char *const sampler_names[] = { "ddpm", "ddim", "dpm++2m" };

/* The engine's rule (ditd_sampler_parse): any case. */
static int sampler(const char *name, enum ditd_sampler *out)
{
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(name, sampler_names[i]) == 0) {
            *out = (enum ditd_sampler)i;
            return 0;
        }
    }
    return -22;
}

static const char *sampler_name(enum ditd_sampler s)
{
    return sampler_names[s];
}

static const struct request_limits lim = {
    .num_classes = 10, .max_images = 8, .max_steps = 1000, .default_steps = 50,
    .default_cfg = 4.0, .max_cfg = 20.0, .default_sampler = DITD_SAMPLER_DDPM,
    .default_sampler_name = "ddpm", .class_lookup = lookup, .sampler_parse = sampler,
    .sampler_name = sampler_name,
};

static struct gen_request r;
static char field[REQUEST_FIELD_LEN];
static char err[512];

static int parse(const char *body)
{
    return request_parse(&r, body, strlen(body), &lim, field, sizeof(field), err, sizeof(err));
}

#define REFUSED(body, fld) do { \
        CHECK_EQ_INT(parse(body), -EINVAL); \
        CHECK_STR_CONTAINS(field, fld); \
        CHECK(strcmp(field, fld) == 0); \
    } while (0)

int main(void)
{
    CHECK_EQ_INT(parse("{\"class\":1,\"cfg\":4.0}"), 0);
    CHECK_EQ_INT(r.class_id, 1);
    CHECK_NEAR(r.cfg, 4.0, 0);
    CHECK_EQ_INT(r.steps, 50);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(r.seed, -1);
    CHECK(strcmp(r.sampler_name, "ddpm") == 0);
    CHECK_EQ_INT(request_rows(&r), 2);

    CHECK_EQ_INT(parse("{\"class\":\"Sneaker\",\"cfg\":1,\"steps\":10,\"sampler\":\"ddim\","
                       "\"eta\":0.5,\"seed\":9223372036854775807,\"n\":8,\"stream\":true,"
                       "\"preview\":5,\"spacing\":\"ddim\",\"deadline_ms\":1000}"), 0);
    CHECK_EQ_INT(r.class_id, 7);
    CHECK_EQ_INT(request_rows(&r), 1);
    CHECK_EQ_INT(r.sampler, DITD_SAMPLER_DDIM);
    CHECK(r.ddim_spacing && r.stream);
    CHECK_EQ_INT(r.seed, 9223372036854775807LL);
    CHECK_EQ_INT(r.preview, 5);
    /* Sampler and spacing names in any case; the canonical name is kept. */
    CHECK_EQ_INT(parse("{\"class\":1,\"sampler\":\"DPM++2M\",\"spacing\":\"DDIM\"}"), 0);
    CHECK_EQ_INT(r.sampler, DITD_SAMPLER_DPMPP_2M);
    CHECK(strcmp(r.sampler_name, "dpm++2m") == 0 && r.ddim_spacing);
    CHECK_EQ_INT(parse("{\"class\":1,\"spacing\":\"Uniform\"}"), 0);
    CHECK(!r.ddim_spacing);
    CHECK_EQ_INT(parse("{\"class\":2.0}"), 0);   /* integral reals are integers */
    CHECK_EQ_INT(parse("{\"class\":3,\"seed\":-1}"), 0);

    REFUSED("{\"class\":1.5}", "class");
    REFUSED("{\"class\":-1}", "class");
    REFUSED("{\"class\":10}", "class");
    REFUSED("{\"class\":\"cat\"}", "class");
    REFUSED("{\"class\":true}", "class");
    REFUSED("{\"cfg\":4}", "class");
    REFUSED("{\"class\":1,\"cfg\":-0.5}", "cfg");
    CHECK_STR_CONTAINS(err, "cfg -0.5 is outside");
    REFUSED("{\"class\":1,\"cfg\":21}", "cfg");
    REFUSED("{\"class\":1,\"cfg\":\"4\"}", "cfg");
    REFUSED("{\"class\":1,\"cfg\":1e999}", "");   /* jansson: real overflow */
    REFUSED("{\"class\":1,\"steps\":0}", "steps");
    REFUSED("{\"class\":1,\"steps\":1001}", "steps");
    REFUSED("{\"class\":1,\"steps\":2.5}", "steps");
    REFUSED("{\"class\":1,\"sampler\":\"euler\"}", "sampler");
    REFUSED("{\"class\":1,\"sampler\":3}", "sampler");
    REFUSED("{\"class\":1,\"eta\":2}", "eta");
    REFUSED("{\"class\":1,\"seed\":-2}", "seed");
    REFUSED("{\"class\":1,\"seed\":\"1\"}", "seed");
    REFUSED("{\"class\":1,\"n\":0}", "n");
    REFUSED("{\"class\":1,\"n\":9}", "n");
    REFUSED("{\"class\":1,\"stream\":1}", "stream");
    REFUSED("{\"class\":1,\"preview\":-1}", "preview");
    REFUSED("{\"class\":1,\"steps\":10,\"preview\":11}", "preview");
    REFUSED("{\"class\":1,\"spacing\":\"linear\"}", "spacing");
    REFUSED("{\"class\":1,\"deadline_ms\":0}", "deadline_ms");
    REFUSED("{\"class\":1,\"cfg_scale\":4}", "cfg_scale");
    CHECK_STR_CONTAINS(err, "unknown field");

    /* The body as a whole. */
    REFUSED("", "");
    CHECK_STR_CONTAINS(err, "empty");
    REFUSED("{\"class\":1,\"class\":2}", "");
    CHECK_STR_CONTAINS(err, "duplicate");
    REFUSED("[1]", "");
    REFUSED("{\"class\":1", "");
    REFUSED("{\"class\":1} x", "");
    REFUSED("{\"class\":NaN}", "");
    REFUSED("{\"class\":1,\"seed\":9223372036854775808}", "");
    REFUSED("\xff\xfe", "");
    {
        /* Deeper than jansson's 2048 levels. */
        static char deep[5000];

        memset(deep, '[', 4200);
        CHECK_EQ_INT(parse(deep), -EINVAL);
    }
    return test_status();
}
