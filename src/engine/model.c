/*
 * model.c - open a model directory (docs/models.md): read the two
 * config.json files and model_index.json, map the weight files, detect the
 * key layout and numerics, bind the weights, and describe the result in
 * struct ditd_model_info. Also the architecture table of the paper.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "isa.h"
#include "conv3_dnn.h"
#include "ops_dnn.h"
#include "model.h"

int model_own(struct ditd_model *m, void *p)
{
    if (m->nowned == m->capowned) {
        int cap = m->capowned ? 2 * m->capowned : 64;
        void **grown = realloc(m->owned, sizeof(*grown) * (size_t)cap);
        if (!grown) {
            free(p);
            return DITD_ENOMEM;
        }
        m->owned = grown;
        m->capowned = cap;
    }
    m->owned[m->nowned++] = p;
    return 0;
}

void model_drop(struct ditd_model *m, const struct st_file *f, const void *p, size_t nbytes)
{
    for (int i = m->nowned - 1; i >= 0; i--) {
        if (m->owned[i] == p) {
            free(m->owned[i]);
            m->owned[i] = m->owned[--m->nowned];
            return;
        }
    }
    st_release_bytes(f, p, nbytes);
}

/* ---------------------------------------------------------------------------
 * JSON helpers: every field is type-checked before use.
 */
static json_t *load_json(const char *dir, const char *file, int required, char *err, size_t errlen)
{
    char path[4096];
    json_error_t jerr;
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        int missing = access(path, F_OK) != 0;
        if (missing && !required)
            return NULL;
        /* jansson's line is -1 when the file could not be read at all. */
        if (missing)
            snprintf(err, errlen, "%s: no such file; a model directory holds "
                     "transformer/config.json and vae/config.json (docs/models.md)", path);
        else if (jerr.line < 0)
            snprintf(err, errlen, "%s", jerr.text);
        else
            snprintf(err, errlen, "%s: %s (line %d, column %d)", path, jerr.text, jerr.line,
                     jerr.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        snprintf(err, errlen, "%s: the top level must be a JSON object", path);
        json_decref(j);
        return NULL;
    }
    return j;
}

static int json_int(json_t *obj, const char *file, const char *key, int def, int lo, int hi,
                    int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (def == INT32_MIN) {
            snprintf(err, errlen, "%s: required key \"%s\" is missing", file, key);
            return DITD_EINVAL;
        }
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "%s: \"%s\" must be an integer in [%d, %d]", file, key, lo, hi);
        return DITD_EINVAL;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int json_str_choice(json_t *obj, const char *file, const char *key,
                           const char *const *choices, int nchoices, int def, int *out,
                           char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    for (int i = 0; json_is_string(v) && i < nchoices; i++) {
        if (strcmp(json_string_value(v), choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    char list[256] = "";
    for (int i = 0; i < nchoices; i++) {
        strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
        strncat(list, choices[i], sizeof(list) - strlen(list) - 1);
    }
    snprintf(err, errlen, "%s: \"%s\" must be one of %s", file, key, list);
    return DITD_EINVAL;
}

/* ---------------------------------------------------------------------------
 * Configurations.
 */
static int read_dit_config(struct ditd_model *m, json_t *j, char *err, size_t errlen)
{
    static const char *const file = "transformer/config.json";
    static const char *const blocks[] = { "adaln_zero", "adaln", "cross_attention", "in_context" };
    static const char *const numerics[] = { "original", "diffusers" };
    struct dit_config *c = &m->dit;
    int head_dim, block, num, rc;
    const int req = INT32_MIN;

    if ((rc = json_int(j, file, "sample_size", req, 1, 512, &c->input_size, err, errlen)) ||
        (rc = json_int(j, file, "patch_size", 2, 1, 64, &c->patch, err, errlen)) ||
        (rc = json_int(j, file, "in_channels", 4, 1, 64, &c->in_channels, err, errlen)) ||
        (rc = json_int(j, file, "out_channels", 2 * c->in_channels, 1, 128, &c->out_channels, err, errlen)) ||
        (rc = json_int(j, file, "num_layers", req, 1, 256, &c->depth, err, errlen)) ||
        (rc = json_int(j, file, "num_attention_heads", req, 1, 1024, &c->heads, err, errlen)) ||
        (rc = json_int(j, file, "attention_head_dim", req, 1, 4096, &head_dim, err, errlen)) ||
        (rc = json_int(j, file, "num_embeds_ada_norm", 1000, 1, 1000000, &c->num_classes, err, errlen)) ||
        (rc = json_str_choice(j, file, "ditd_block", blocks, 4, 0, &block, err, errlen)) ||
        (rc = json_str_choice(j, file, "ditd_numerics", numerics, 2,
                              m->info.layout == DITD_LAYOUT_DIFFUSERS, &num, err, errlen)))
        return rc;
    c->hidden = c->heads * head_dim;
    c->block = (enum ditd_block)block;
    m->info.diffusers_numerics = num == 1;
    c->t_divisor = num == 1 ? 127.0f : 128.0f;
    c->mlp_norm_eps = 1e-6f;
    if (num == 1) {
        json_t *eps = json_object_get(j, "norm_eps");
        if (eps && !json_is_number(eps)) {
            snprintf(err, errlen, "%s: \"norm_eps\" must be a number", file);
            return DITD_EINVAL;
        }
        c->mlp_norm_eps = eps ? (float)json_number_value(eps) : 1e-5f;
    }
    if (c->block != DITD_BLOCK_ADALN_ZERO && m->info.layout == DITD_LAYOUT_DIFFUSERS) {
        snprintf(err, errlen, "%s: \"ditd_block\": \"%s\" exists only in the original key "
                 "layout", file, blocks[block]);
        return DITD_EINVAL;
    }
    int guidance_default = num == 1 ? c->in_channels : (c->in_channels < 3 ? c->in_channels : 3);
    if ((rc = json_int(j, file, "ditd_guidance_channels", guidance_default, 1, c->in_channels,
                       &m->info.guidance_channels, err, errlen)))
        return rc;
    return dit_config_finish(c, err, errlen);
}

static int read_vae_config(struct ditd_model *m, json_t *j, char *err, size_t errlen)
{
    static const char *const file = "vae/config.json";
    struct vae_config *c = &m->vae;
    json_t *boc = json_object_get(j, "block_out_channels");
    int rc, attn = 1;

    if ((rc = json_int(j, file, "latent_channels", 4, 1, MODEL_MAX_LATENT_CHANNELS,
                       &c->latent_channels, err, errlen)) ||
        (rc = json_int(j, file, "out_channels", 3, 1, 4, &c->out_channels, err, errlen)) ||
        (rc = json_int(j, file, "layers_per_block", 1, 1, VAE_MAX_LAYERS,
                       &c->layers_per_block, err, errlen)) ||
        (rc = json_int(j, file, "norm_num_groups", 32, 1, 256, &c->groups, err, errlen)))
        return rc;
    if (!json_is_array(boc) || json_array_size(boc) < 1 || json_array_size(boc) > VAE_MAX_BLOCKS) {
        snprintf(err, errlen, "%s: \"block_out_channels\" must be a list of 1 to %d integers",
                 file, VAE_MAX_BLOCKS);
        return DITD_EINVAL;
    }
    c->blocks = (int)json_array_size(boc);
    for (int i = 0; i < c->blocks; i++) {
        json_t *v = json_array_get(boc, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 4096 ||
            json_integer_value(v) % c->groups != 0) {
            snprintf(err, errlen, "%s: block_out_channels[%d] must be a positive multiple of "
                     "norm_num_groups (%d), at most 4096", file, i, c->groups);
            return DITD_EINVAL;
        }
        c->block_out[i] = (int)json_integer_value(v);
    }
    json_t *a = json_object_get(j, "mid_block_add_attention");
    if (a && !json_is_boolean(a)) {
        snprintf(err, errlen, "%s: \"mid_block_add_attention\" must be true or false", file);
        return DITD_EINVAL;
    }
    if (a)
        attn = json_is_true(a);
    c->mid_attention = attn;
    json_t *sf = json_object_get(j, "scaling_factor");
    if (sf && (!json_is_number(sf) || !(json_number_value(sf) > 0))) {
        snprintf(err, errlen, "%s: \"scaling_factor\" must be a positive number", file);
        return DITD_EINVAL;
    }
    c->scaling_factor = sf ? (float)json_number_value(sf) : 0.18215f;
    return 0;
}

/* Optional preview projection latent_rgb_factors (C x 3) + latent_rgb_bias (3). */
static int read_rgb_factors(struct ditd_model *m, json_t *j, int *found, char *err, size_t errlen)
{
    json_t *f = json_object_get(j, "latent_rgb_factors"), *b = json_object_get(j, "latent_rgb_bias");
    const int C = m->vae.latent_channels;

    *found = 0;
    if (!f)
        return 0;
    if (!json_is_array(f) || (int)json_array_size(f) != C)
        goto bad;
    for (int c = 0; c < C; c++) {
        json_t *row = json_array_get(f, (size_t)c);
        if (!json_is_array(row) || json_array_size(row) != 3)
            goto bad;
        for (int k = 0; k < 3; k++) {
            json_t *v = json_array_get(row, (size_t)k);
            if (!json_is_number(v))
                goto bad;
            m->rgb_factors[c * 3 + k] = (float)json_number_value(v);
        }
    }
    for (int k = 0; k < 3; k++) {
        json_t *v = b ? json_array_get(b, (size_t)k) : NULL;
        if (b && (!json_is_array(b) || json_array_size(b) != 3 || !json_is_number(v)))
            goto bad;
        m->rgb_bias[k] = v ? (float)json_number_value(v) : 0.0f;
    }
    *found = 1;
    return 0;
bad:
    snprintf(err, errlen, "vae/config.json: \"latent_rgb_factors\" must be %d lists of 3 numbers "
             "and \"latent_rgb_bias\" a list of 3 numbers", C);
    return DITD_EINVAL;
}

/* Class names from model_index.json "id2label": {"7": "sneaker", ...}. */
static int read_class_names(struct ditd_model *m, json_t *index, char *err, size_t errlen)
{
    const int n = m->dit.num_classes;
    json_t *map = index ? json_object_get(index, "id2label") : NULL;
    const char *key;
    json_t *val;

    m->class_names = calloc((size_t)n, sizeof(char *));
    m->class_labels = calloc((size_t)n, sizeof(char *));
    if (!m->class_names || !m->class_labels)
        return DITD_ENOMEM;
    if (!map)
        return 0;
    if (!json_is_object(map)) {
        snprintf(err, errlen, "model_index.json: \"id2label\" must be an object of id: label");
        return DITD_EINVAL;
    }
    json_object_foreach(map, key, val) {
        char *end;
        errno = 0;
        long id = strtol(key, &end, 10);
        if (errno || *end || end == key || id < 0 || id >= n || !json_is_string(val)) {
            snprintf(err, errlen, "model_index.json: id2label entry \"%s\" must map a class id "
                     "in [0, %d) to a string", key, n);
            return DITD_EINVAL;
        }
        const char *label = json_string_value(val);
        size_t len = strcspn(label, ",");
        free(m->class_labels[id]);
        free(m->class_names[id]);
        m->class_labels[id] = strdup(label);
        m->class_names[id] = strndup(label, len);
        if (!m->class_labels[id] || !m->class_names[id])
            return DITD_ENOMEM;
    }
    return 0;
}

/* Case-insensitive, with ' ' and '_' treated alike, over [a, a+alen). */
static int name_matches(const char *a, size_t alen, const char *b)
{
    while (alen && isspace((unsigned char)*a)) {
        a++;
        alen--;
    }
    while (alen && isspace((unsigned char)a[alen - 1]))
        alen--;
    if (strlen(b) != alen || alen == 0)
        return 0;
    for (size_t i = 0; i < alen; i++) {
        int x = tolower((unsigned char)a[i]), y = tolower((unsigned char)b[i]);
        if (x == '_')
            x = ' ';
        if (y == '_')
            y = ' ';
        if (x != y)
            return 0;
    }
    return 1;
}

int ditd_model_class(const struct ditd_model *m, const char *name)
{
    char *end;
    errno = 0;
    long id = strtol(name, &end, 10);
    if (!errno && end != name && *end == '\0')
        return id >= 0 && id < m->dit.num_classes ? (int)id : -1;
    for (int i = 0; i < m->dit.num_classes; i++) {
        const char *label = m->class_labels[i];
        while (label) {
            size_t len = strcspn(label, ",");
            if (name_matches(label, len, name))
                return i;
            label = label[len] ? label + len + 1 : NULL;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------------------
 * Loading.
 */
static void fill_info(struct ditd_model *m)
{
    struct ditd_model_info *i = &m->info;
    const struct dit_config *d = &m->dit;

    i->path = m->path;
    i->name = m->name;
    i->id = m->id;
    i->block = d->block;
    i->latent_size = d->input_size;
    i->image_size = d->input_size << (m->vae.blocks - 1);
    i->image_channels = m->vae.out_channels;
    i->latent_channels = d->in_channels;
    i->learn_sigma = d->out_channels == 2 * d->in_channels;
    i->patch = d->patch;
    i->depth = d->depth;
    i->hidden = d->hidden;
    i->heads = d->heads;
    i->num_classes = d->num_classes;
    i->class_names = (const char *const *)m->class_names;
    i->class_labels = (const char *const *)m->class_labels;
    i->vae_scaling_factor = m->vae.scaling_factor;
    dit_count(d, &i->dit_params, &i->dit_gmacs);
    i->dit_gmacs /= 1e9;
    vae_count(&m->vae, d->input_size, &i->vae_params, &i->vae_gmacs);
    i->vae_gmacs /= 1e9;
    i->weight_bytes = 4 * (i->dit_params + i->vae_params);
    i->precision = m->precision == DITD_PRECISION_BF16 ? "bf16" : "fp32";
    i->isa = isa_name(isa_level());
    i->precision_note = m->precision_note;
    /* Native bf16 products run several times faster than float32 ones, so
     * twice the rows still make a forward shorter than 16 float32 rows,
     * and twice as many images can share the steps (docs/operations.md). */
    i->default_rows = m->native_bf16 ? 32 : 16;
}

static int detect_layout(struct ditd_model *m, const struct st_file *f, char *err, size_t errlen)
{
    if (st_find(f, "x_embedder.proj.weight")) {
        m->info.layout = DITD_LAYOUT_ORIGINAL;
        return 0;
    }
    if (st_find(f, "pos_embed.proj.weight")) {
        m->info.layout = DITD_LAYOUT_DIFFUSERS;
        return 0;
    }
    snprintf(err, errlen, "transformer/diffusion_pytorch_model.safetensors: neither "
             "x_embedder.proj.weight (original DiT layout) nor pos_embed.proj.weight "
             "(diffusers layout) is present; this is not a DiT checkpoint");
    return DITD_EINVAL;
}

/* Last path component, ignoring trailing slashes: "models/fashion-dit/". */
static char *base_name(const char *dir)
{
    size_t end = strlen(dir);
    while (end > 1 && dir[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    return strndup(dir + start, end - start);
}

static int open_weights(struct st_file *f, const char *dir, const char *file, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return st_open(f, path, err, errlen);
}

int ditd_model_load(struct ditd_model **out, const char *dir, char *err, size_t errlen)
{
    return ditd_model_load_precision(out, dir, DITD_PRECISION_AUTO, err, errlen);
}

int ditd_model_load_precision(struct ditd_model **out, const char *dir,
                              enum ditd_precision precision, char *err, size_t errlen)
{
    struct ditd_model *m = calloc(1, sizeof(*m));
    json_t *tj = NULL, *vj = NULL, *ij = NULL;
    int rc = DITD_ENOMEM, found_rgb = 0;

    err[0] = '\0';
    if (!m)
        goto fail;
    m->path = strdup(dir);
    m->name = base_name(dir);
    if (!m->path || !m->name)
        goto fail;

    rc = DITD_EINVAL;
    if (!(tj = load_json(dir, "transformer/config.json", 1, err, errlen)) ||
        !(vj = load_json(dir, "vae/config.json", 1, err, errlen)))
        goto fail;
    ij = load_json(dir, "model_index.json", 0, err, errlen);
    if (!ij && err[0])
        goto fail;

    if ((rc = open_weights(&m->dit_file, dir, "transformer/diffusion_pytorch_model.safetensors",
                           err, errlen)) ||
        (rc = detect_layout(m, &m->dit_file, err, errlen)) ||
        (rc = read_dit_config(m, tj, err, errlen)) ||
        (rc = read_vae_config(m, vj, err, errlen)) ||
        (rc = read_rgb_factors(m, vj, &found_rgb, err, errlen)) ||
        (rc = read_class_names(m, ij, err, errlen)))
        goto fail;
    if (m->vae.latent_channels != m->dit.in_channels) {
        snprintf(err, errlen, "the VAE has %d latent channels but the transformer %d; "
                 "the two configs belong to different models", m->vae.latent_channels,
                 m->dit.in_channels);
        rc = DITD_EINVAL;
        goto fail;
    }
    int bf16;
    isa_choose_precision(precision, m->dit.transposed, &bf16, &m->native_bf16,
                         m->precision_note, sizeof(m->precision_note));
    m->precision = bf16 ? DITD_PRECISION_BF16 : DITD_PRECISION_FP32;
    m->dit.bf16 = bf16;
    m->vae.bf16 = bf16;
    if ((rc = model_bind_dit(m, &m->dit_file, err, errlen)) ||
        (rc = open_weights(&m->vae_file, dir, "vae/diffusion_pytorch_model.safetensors", err, errlen)) ||
        (rc = model_bind_vae(m, &m->vae_file, err, errlen)))
        goto fail;
    if ((rc = metadata_model_id(dir, m->id, err, errlen)))
        goto fail;
    fill_info(m);
    if ((rc = preview_init(m, found_rgb, err, errlen)))
        goto fail;
    /* Converting weights frees float32 copies in the middle of the heap;
     * give their pages back so resident memory is the weights in use. */
    malloc_trim(0);

    json_decref(tj);
    json_decref(vj);
    json_decref(ij);
    *out = m;
    return 0;

fail:
    if (rc == DITD_ENOMEM && !err[0])
        snprintf(err, errlen, "out of memory loading %s", dir);
    json_decref(tj);
    json_decref(vj);
    json_decref(ij);
    ditd_model_free(m);
    return rc;
}

void ditd_model_free(struct ditd_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->nowned; i++)
        free(m->owned[i]);
    free(m->owned);
    dnn_model_free(m->dnn);
    conv3_dnn_model_free(m->vae.dnn);
    for (int i = 0; m->class_names && i < m->dit.num_classes; i++) {
        free(m->class_names[i]);
        free(m->class_labels[i]);
    }
    free(m->class_names);
    free(m->class_labels);
    st_close(&m->dit_file);
    st_close(&m->vae_file);
    free(m->path);
    free(m->name);
    free(m);
}

const struct ditd_model_info *ditd_model_info(const struct ditd_model *m)
{
    return &m->info;
}

/* ---------------------------------------------------------------------------
 * The paper's configurations, for `dit info --config` and `dit bench`.
 */
int model_arch_config(const char *config, int image_size, int num_classes,
                      struct dit_config *out, char *err, size_t errlen)
{
    static const struct { const char *name; int depth, hidden, heads; } table[] = {
        { "S", 12, 384, 6 }, { "B", 12, 768, 12 }, { "L", 24, 1024, 16 }, { "XL", 28, 1152, 16 },
    };
    char size[8];
    int patch = 0;

    if (sscanf(config, "%7[A-Za-z]/%d", size, &patch) != 2 || patch < 1 || image_size % 8 != 0 ||
        image_size < 8 || (image_size / 8) % patch != 0) {
        snprintf(err, errlen, "config \"%s\" at %d px: expected S|B|L|XL / 2|4|8 (e.g. XL/2) "
                 "and an image size that is a multiple of 8*patch", config, image_size);
        return DITD_EINVAL;
    }
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcasecmp(size, table[i].name) != 0)
            continue;
        *out = (struct dit_config){
            .in_channels = 4, .out_channels = 8, .input_size = image_size / 8, .patch = patch,
            .hidden = table[i].hidden, .depth = table[i].depth, .heads = table[i].heads,
            .num_classes = num_classes, .block = DITD_BLOCK_ADALN_ZERO,
            .t_divisor = 128.0f, .mlp_norm_eps = 1e-6f,
        };
        return dit_config_finish(out, err, errlen);
    }
    snprintf(err, errlen, "unknown model size \"%s\": use S, B, L or XL", size);
    return DITD_EINVAL;
}

int ditd_arch_info(const char *config, int image_size, int num_classes,
                   struct ditd_arch_info *out, char *err, size_t errlen)
{
    struct dit_config c;
    int rc = model_arch_config(config, image_size, num_classes, &c, err, errlen);
    if (rc)
        return rc;
    out->depth = c.depth;
    out->hidden = c.hidden;
    out->heads = c.heads;
    out->patch = c.patch;
    dit_count(&c, &out->params, &out->gmacs);
    out->gmacs /= 1e9;
    return 0;
}
