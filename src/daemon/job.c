/*
 * job.c - job lifetime, event log and JSON views (see job.h). Nothing here
 * touches the engine or HTTP objects: images are freed by the worker that
 * owns them, connections are the http layer's.
 */
#include "job.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char *const state_names[] = {
    "queued", "running", "completed", "failed", "cancelled"
};
static const char *const cancel_reason_names[] = {
    "client", "disconnect", "deadline", "shutdown"
};

const char *job_state_name(enum job_state s)
{
    return state_names[s];
}

bool job_state_terminal(enum job_state s)
{
    return s == JOB_COMPLETED || s == JOB_FAILED || s == JOB_CANCELLED;
}

uint64_t job_random_u64(void)
{
    uint64_t v = 0;
    ssize_t n;

    do {
        n = getrandom(&v, sizeof(v), 0);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(v)) {
        /* getrandom cannot fail for 8 bytes once the pool is ready; fall
         * back to the clock so an id is still unique enough. */
        v ^= (uint64_t)job_now_ns() * 0x9E3779B97F4A7C15ull;
    }
    return v;
}

struct job *job_new(enum job_kind kind, const struct gen_request *req, uint64_t seed,
                    int64_t timeout_ns)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    j->images = calloc((size_t)req->n, sizeof(*j->images));
    if (!j->images) {
        free(j);
        return NULL;
    }
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        free(j->images);
        free(j);
        return NULL;
    }
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancel, false);
    atomic_init(&j->posted, false);
    snprintf(j->id, sizeof(j->id), "%016llx", (unsigned long long)job_random_u64());
    j->kind = kind;
    j->req = *req;
    j->seed = seed;
    j->rows = request_rows(req);
    j->created_ns = job_now_ns();
    j->created_unix = job_unix_now();
    j->deadline_ns = timeout_ns > 0 ? j->created_ns + timeout_ns : 0;
    j->state = JOB_QUEUED;
    j->cancel_reason = -1;
    return j;
}

struct job *job_ref(struct job *j)
{
    atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
    return j;
}

static void free_heavy(struct job *j)
{
    for (int i = 0; i < j->req.n; i++) {
        free(j->images[i].png);
        j->images[i].png = NULL;
        j->images[i].png_len = 0;
    }
    for (size_t i = 0; i < j->nevents; i++)
        free(j->events[i].frame);
    free(j->events);
    j->events = NULL;
    j->nevents = j->events_cap = 0;
}

void job_unref(struct job *j)
{
    if (!j)
        return;
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) != 1)
        return;
    free_heavy(j);
    free(j->images);
    idem_free(&j->idem);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

void job_expire(struct job *j)
{
    pthread_mutex_lock(&j->mu);
    free_heavy(j);
    j->expired = true;
    pthread_mutex_unlock(&j->mu);
}

void job_emit_locked(struct job *j, const char *name, json_t *data)
{
    struct job_event *ev;
    struct buf b;
    char *text;

    if (j->kind == JOB_KIND_SYNC || j->expired || !data) {
        json_decref(data);
        return;
    }
    json_object_set_new(data, "type", json_string(name));
    text = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(data);
    if (!text)
        return;
    if (j->nevents == j->events_cap) {
        size_t cap = j->events_cap ? j->events_cap * 2 : 16;
        struct job_event *p = realloc(j->events, cap * sizeof(*p));

        if (!p) {
            free(text);
            return;
        }
        j->events = p;
        j->events_cap = cap;
    }
    buf_init(&b, 0);
    buf_printf(&b, "id: %llu\nevent: %s\ndata: %s\n\n",
               (unsigned long long)(j->last_event_id + 1), name, text);
    free(text);
    if (b.err) {
        buf_free(&b);
        return;
    }
    ev = &j->events[j->nevents++];
    ev->id = ++j->last_event_id;
    ev->frame = buf_steal(&b, &ev->len);
}

void job_emit(struct job *j, const char *name, json_t *data)
{
    pthread_mutex_lock(&j->mu);
    job_emit_locked(j, name, data);
    pthread_mutex_unlock(&j->mu);
}

static double ms(int64_t ns)
{
    return (double)ns / 1e6;
}

json_t *job_timings_locked(struct job *j)
{
    int64_t end = j->finished_ns ? j->finished_ns : job_now_ns();
    int64_t start = j->started_ns ? j->started_ns : end;
    int64_t sampled = j->sampled_ns ? j->sampled_ns : (j->started_ns ? end : start);

    return json_pack("{s:f,s:f,s:f,s:f,s:f,s:f}",
                     "queue_ms", ms(start - j->created_ns),
                     "sample_ms", ms(sampled - start),
                     "decode_ms", ms((int64_t)j->decode_ns),
                     "encode_ms", ms((int64_t)j->encode_ns),
                     "total_ms", ms(end - j->created_ns),
                     "batch_size_mean", j->batch_count ? (double)j->batch_sum / j->batch_count : 0.0);
}

bool job_finish_locked(struct job *j, enum job_state state, const char *error_type,
                       const char *error_msg)
{
    enum metrics_outcome outcome;
    json_t *ev;

    if (job_state_terminal(j->state))
        return false;
    j->state = state;
    j->finished_ns = job_now_ns();
    j->finished_unix = job_unix_now();
    if (error_type)
        snprintf(j->error_type, sizeof(j->error_type), "%s", error_type);
    if (error_msg)
        snprintf(j->error_msg, sizeof(j->error_msg), "%s", error_msg);
    switch (state) {
    case JOB_COMPLETED:
        outcome = OUTCOME_COMPLETED;
        ev = json_pack("{s:s,s:I,s:o,s:i}", "id", j->id, "seed", (json_int_t)j->seed,
                       "timings", job_timings_locked(j), "images", j->req.n);
        job_emit_locked(j, "done", ev);
        break;
    case JOB_CANCELLED:
        outcome = OUTCOME_CANCELLED;
        if (j->cancel_reason < 0)
            j->cancel_reason = CANCEL_CLIENT;
        metrics_add(&metrics.cancelled[j->cancel_reason], 1);
        job_emit_locked(j, "cancelled", json_pack("{s:s,s:s}", "id", j->id, "reason",
                                                  cancel_reason_names[j->cancel_reason]));
        break;
    default:
        outcome = OUTCOME_FAILED;
        job_emit_locked(j, "error", json_pack("{s:s,s:{s:s,s:s}}", "id", j->id, "error",
                                              "type", j->error_type, "message", j->error_msg));
        break;
    }
    metrics_add(&metrics.jobs[outcome], 1);
    return true;
}

size_t job_read_events(struct job *j, uint64_t *after_id, size_t *offset, char *out,
                       size_t max, bool *ended)
{
    size_t copied = 0;
    size_t i;

    pthread_mutex_lock(&j->mu);
    /* Event ids are 1..nevents in order, so the event after `after_id`
     * sits at index after_id. */
    i = (size_t)*after_id;
    while (i < j->nevents && copied < max) {
        struct job_event *ev = &j->events[i];
        size_t n = ev->len - *offset;

        if (n > max - copied)
            n = max - copied;
        memcpy(out + copied, ev->frame + *offset, n);
        copied += n;
        *offset += n;
        if (*offset == ev->len) {
            *offset = 0;
            *after_id = ev->id;
            i++;
        }
    }
    *ended = (job_state_terminal(j->state) && i >= j->nevents) || j->expired;
    pthread_mutex_unlock(&j->mu);
    return copied;
}

json_t *job_to_json(struct job *j, int queue_position)
{
    json_t *o;
    json_t *images;
    long total;

    pthread_mutex_lock(&j->mu);
    total = (long)j->req.n * j->req.steps;
    /* A running job that was asked to stop says so until its worker drops it. */
    o = json_pack("{s:s,s:s,s:s,s:f}", "id", j->id, "request_id", j->request_id,
                  "status", atomic_load(&j->cancel) && !job_state_terminal(j->state)
                                ? "cancelling" : job_state_name(j->state),
                  "created", j->created_unix);
    if (j->started_ns)
        json_object_set_new(o, "started", json_real(j->started_unix));
    if (j->finished_ns)
        json_object_set_new(o, "completed", json_real(j->finished_unix));
    if (j->state == JOB_QUEUED && queue_position >= 0)
        json_object_set_new(o, "queue_position", json_integer(queue_position));
    if (!j->expired) {
        json_t *prog = json_pack("{s:I,s:I,s:f,s:i}", "step", (json_int_t)j->steps_done,
                                 "steps", (json_int_t)total,
                                 "fraction", total ? (double)j->steps_done / (double)total : 0.0,
                                 "images_done", j->images_done);

        if (j->started_ns && j->steps_done > 0 && !job_state_terminal(j->state)) {
            double el = ms(job_now_ns() - j->started_ns);

            json_object_set_new(prog, "eta_ms", json_real(el / (double)j->steps_done *
                                                           (double)(total - j->steps_done)));
        }
        json_object_set_new(o, "progress", prog);
    }
    json_object_set_new(o, "request", json_pack("{s:i,s:f,s:i,s:s,s:s,s:f,s:I,s:i,s:I}",
        "class", j->req.class_id, "cfg", j->req.cfg, "steps", j->req.steps,
        "sampler", j->req.sampler_name,
        "spacing", j->req.ddim_spacing ? "ddim" : "uniform", "eta", j->req.eta,
        "seed", (json_int_t)j->seed, "n", j->req.n, "index", (json_int_t)j->req.index));
    images = json_array();
    for (int i = 0; i < j->req.n && !j->expired; i++) {
        char url[96];

        if (!j->images[i].png)
            continue;
        snprintf(url, sizeof(url), "/jobs/%s/images/%d.png", j->id, i);
        json_array_append_new(images, json_pack("{s:I,s:I,s:s}", "index", job_image_index(j, i),
                                                "seed", (json_int_t)j->seed, "url", url));
    }
    json_object_set_new(o, "images", images);
    if (j->started_ns)
        json_object_set_new(o, "timings", job_timings_locked(j));
    if (j->state == JOB_FAILED)
        json_object_set_new(o, "error", json_pack("{s:s,s:s}", "type", j->error_type,
                                                  "message", j->error_msg));
    if (j->state == JOB_CANCELLED && j->cancel_reason >= 0)
        json_object_set_new(o, "reason", json_string(cancel_reason_names[j->cancel_reason]));
    pthread_mutex_unlock(&j->mu);
    return o;
}
