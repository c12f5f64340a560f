/*
 * scheduler.c - continuous batching (see scheduler.h). Each worker runs
 * sched_worker_run(): admit at the step boundary, drop cancelled work, one
 * batched DiT step, then batched decode + PNG encode of finished images.
 * Events for streams are built here, on the worker, so the loop thread only
 * copies bytes.
 */
#include "scheduler.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ditd.h"
#include "log.h"
#include "metrics.h"

#include "sched_internal.h"

int sched_init(struct sched *s, const struct ditd_model *m, int max_rows, int max_queue,
               void (*notify)(struct job *j, void *arg), void *notify_arg)
{
    memset(s, 0, sizeof(*s));
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        return -ENOMEM;
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        return -ENOMEM;
    }
    atomic_init(&s->abort_reason, -1);
    s->fail_seed = -1;
    s->model = m;
    s->max_rows = max_rows;
    s->max_queue = max_queue;
    s->notify = notify;
    s->notify_arg = notify_arg;
    s->preview_method = m ? ditd_model_info(m)->preview : "";
    eta_model_init(&s->eta);
    metrics_gauge_set(&metrics.queue_capacity, max_queue);
    return 0;
}

void sched_destroy(struct sched *s)
{
    while (s->qhead) {
        struct job *j = s->qhead;

        s->qhead = j->qnext;
        job_unref(j);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

void sched_set_max_queue(struct sched *s, int max_queue)
{
    pthread_mutex_lock(&s->mu);
    s->max_queue = max_queue;
    pthread_mutex_unlock(&s->mu);
    metrics_gauge_set(&metrics.queue_capacity, max_queue);
}

static void notify(struct sched *s, struct job *j)
{
    if (s->notify)
        s->notify(j, s->notify_arg);
}

static void publish_gauges(struct sched *s)
{
    metrics_gauge_set(&metrics.queue_depth, s->waiting);
    metrics_gauge_set(&metrics.jobs_running, s->running_jobs);
}

/* Remove j from the queue and drop the queue's reference; sched lock held. */
static void queue_remove(struct sched *s, struct job *j)
{
    if (!j->queued)
        return;
    if (j->qprev)
        j->qprev->qnext = j->qnext;
    else
        s->qhead = j->qnext;
    if (j->qnext)
        j->qnext->qprev = j->qprev;
    else
        s->qtail = j->qprev;
    j->qprev = j->qnext = NULL;
    j->queued = false;
    job_unref(j);
}

/* Tell every job that has not started its new place; sched lock held. */
static void announce_positions(struct sched *s)
{
    int64_t *start = NULL, *done = NULL;
    bool replayed = false;
    int pos = 0, k = 0;

    for (struct job *j = s->qhead; j; j = j->qnext, k++) {
        if (j->next_image > 0)
            continue;
        if (j->position != pos) {
            j->position = pos;
            if (j->kind != JOB_KIND_SYNC) {     /* plain requests keep no events */
                if (!replayed) {
                    sched_replay(s, NULL, &start, &done);
                    replayed = true;
                }
                sched_emit_queued(j, pos, start, done, k, false);
                notify(s, j);
            }
        }
        pos++;
    }
    free(start);
    free(done);
}

int sched_submit(struct sched *s, struct job *j)
{
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return -ESHUTDOWN;
    }
    if (j->rows > s->max_rows) {
        pthread_mutex_unlock(&s->mu);
        return -E2BIG;
    }
    if (s->waiting >= s->max_queue) {
        pthread_mutex_unlock(&s->mu);
        return -EAGAIN;
    }
    job_ref(j);
    j->queued = true;
    j->qprev = s->qtail;
    j->qnext = NULL;
    if (s->qtail)
        s->qtail->qnext = j;
    else
        s->qhead = j;
    s->qtail = j;
    j->position = s->waiting++;
    if (j->kind != JOB_KIND_SYNC) {
        int64_t *start = NULL, *done = NULL;
        int n = sched_replay(s, NULL, &start, &done);

        sched_emit_queued(j, j->position, start, done, n - 1, true);
        free(start);
        free(done);
    }
    publish_gauges(s);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Terminal state of a job whose last live image is gone; no lock held. */
static void finish_job(struct sched *s, struct job *j, bool started)
{
    enum job_state st;
    bool done;

    pthread_mutex_lock(&j->mu);
    if (j->images_done == j->req.n && !atomic_load(&j->cancel))
        st = JOB_COMPLETED;
    else if (j->error_type[0])
        st = JOB_FAILED;
    else
        st = JOB_CANCELLED;
    if (st == JOB_COMPLETED && !j->sampled_ns)
        j->sampled_ns = job_now_ns();
    done = job_finish_locked(j, st, NULL, NULL);
    if (done && st == JOB_COMPLETED)
        metrics_observe_ns(&metrics.sampling, (uint64_t)(j->sampled_ns - j->started_ns));
    pthread_mutex_unlock(&j->mu);
    if (started && done) {
        pthread_mutex_lock(&s->mu);
        s->running_jobs--;
        publish_gauges(s);
        pthread_mutex_unlock(&s->mu);
    }
    notify(s, j);
}

int sched_cancel(struct sched *s, struct job *j, int reason)
{
    bool finish_now;
    bool started;

    pthread_mutex_lock(&s->mu);
    pthread_mutex_lock(&j->mu);
    if (job_state_terminal(j->state) || atomic_load(&j->cancel)) {
        pthread_mutex_unlock(&j->mu);
        pthread_mutex_unlock(&s->mu);
        return -EALREADY;
    }
    if (j->cancel_reason < 0)
        j->cancel_reason = reason;
    atomic_store(&j->cancel, true);
    pthread_mutex_unlock(&j->mu);
    started = j->next_image > 0;
    if (j->queued) {
        if (!started)
            s->waiting--;
        queue_remove(s, j);
        announce_positions(s);
        publish_gauges(s);
    }
    /* With no live image no worker will see this job again. */
    finish_now = j->images_live == 0;
    pthread_mutex_unlock(&s->mu);
    if (finish_now)
        finish_job(s, j, started);
    return 0;
}

void sched_cancel_all(struct sched *s, int reason)
{
    struct job *batch[64];
    int n;

    /* Queued jobs: collect under the lock, cancel outside it. */
    do {
        n = 0;
        pthread_mutex_lock(&s->mu);
        for (struct job *j = s->qhead; j && n < 64; j = j->qnext)
            batch[n++] = job_ref(j);
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < n; i++) {
            sched_cancel(s, batch[i], reason);
            job_unref(batch[i]);
        }
    } while (n == 64);
    /* Running images are dropped by their workers before their next step. */
    atomic_store(&s->abort_reason, reason);
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sched_expire_queued(struct sched *s, int64_t now_ns)
{
    struct job *late[32];
    int n = 0;

    pthread_mutex_lock(&s->mu);
    for (struct job *j = s->qhead; j && n < 32; j = j->qnext)
        if (j->next_image == 0 && j->deadline_ns && now_ns > j->deadline_ns)
            late[n++] = job_ref(j);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++) {
        sched_cancel(s, late[i], CANCEL_DEADLINE);
        job_unref(late[i]);
    }
}

int sched_position(struct sched *s, struct job *j)
{
    int pos = 0;
    int found = -1;

    pthread_mutex_lock(&s->mu);
    for (struct job *q = s->qhead; q; q = q->qnext) {
        if (q->next_image > 0)
            continue;
        if (q == j) {
            found = pos;
            break;
        }
        pos++;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

int sched_announced_position(struct sched *s, struct job *j)
{
    int pos;

    pthread_mutex_lock(&s->mu);
    pos = j->queued && j->next_image == 0 ? j->position : -1;
    pthread_mutex_unlock(&s->mu);
    return pos;
}

int sched_pending(struct sched *s)
{
    int n = 0;

    pthread_mutex_lock(&s->mu);
    n = s->running_jobs;
    for (struct job *q = s->qhead; q; q = q->qnext)
        if (q->next_image == 0)
            n++;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void sched_close(struct sched *s)
{
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool sched_healthy(struct sched *s, int nworkers, int64_t stall_ns)
{
    int64_t now = job_now_ns();

    for (int i = 0; i < nworkers && i < SCHED_MAX_WORKERS; i++)
        if (atomic_load(&s->busy[i]) && now - atomic_load(&s->beat[i]) > stall_ns)
            return false;
    return true;
}

/* ---- worker side ------------------------------------------------------ */

/* Take images from the head of the queue while policy_admit() lets them
 * in; sched lock held. FIFO: a head that may not join blocks the others,
 * so large requests are not starved by small ones. */
static void admit(struct sched *s, struct sched_worker *ws)
{
    int64_t max_size = 0;
    bool moved = false;

    for (int i = 0; i < ws->n; i++)
        if (job_size(ws->slots[i].job) > max_size)
            max_size = job_size(ws->slots[i].job);
    while (s->qhead) {
        struct job *j = s->qhead;
        struct slot *sl;

        if (!policy_admit(s->max_rows, ws->rows, max_size, j->rows, job_size(j)))
            break;
        if (job_size(j) > max_size)
            max_size = job_size(j);
        sl = &ws->slots[ws->n++];
        sl->job = job_ref(j);
        sl->index = j->next_image++;
        sl->img = NULL;
        sl->fresh = true;
        sl->first = sl->index == 0;
        if (sl->first) {
            s->waiting--;
            s->running_jobs++;
            moved = true;
        }
        j->images_live++;
        ws->rows += j->rows;
        if (j->next_image == j->req.n)
            queue_remove(s, j);
    }
    sched_publish(s, ws);
    if (moved) {
        announce_positions(s);
        publish_gauges(s);
    }
}

static void remove_slot(struct sched_worker *ws, int i)
{
    ws->rows -= ws->slots[i].job->rows;
    memmove(&ws->slots[i], &ws->slots[i + 1], (size_t)(ws->n - i - 1) * sizeof(ws->slots[0]));
    ws->n--;
}

/* Give up slot i (cancelled or failed job). */
static void drop_slot(struct sched *s, struct sched_worker *ws, int i)
{
    struct job *j = ws->slots[i].job;
    bool last;

    if (ws->slots[i].img) {
        ditd_image_free(ws->slots[i].img);
        metrics_gauge_add(&metrics.images_running, -1);
    }
    remove_slot(ws, i);
    pthread_mutex_lock(&s->mu);
    j->images_live--;
    last = j->images_live == 0 && !j->queued;
    pthread_mutex_unlock(&s->mu);
    if (last)
        finish_job(s, j, true);
    job_unref(j);
}

/* Mark a job failed (the first error wins) and cancel the rest of it. */
static void fail_job(struct sched *s, struct job *j, const char *type, const char *msg)
{
    pthread_mutex_lock(&j->mu);
    if (!j->error_type[0]) {
        snprintf(j->error_type, sizeof(j->error_type), "%s", type);
        snprintf(j->error_msg, sizeof(j->error_msg), "%s", msg);
    }
    pthread_mutex_unlock(&j->mu);
    log_msg(LOG_LEVEL_ERROR, "job %s (request %s) failed: %s", j->id, j->request_id, msg);
    sched_cancel(s, j, CANCEL_CLIENT);
}

static void start_images(struct sched *s, struct sched_worker *ws)
{
    char err[DITD_ERR_LEN];

    for (int i = 0; i < ws->n; i++) {
        struct slot *sl = &ws->slots[i];
        struct job *j = sl->job;
        struct ditd_params p;
        int rc;

        if (!sl->fresh)
            continue;
        sl->fresh = false;
        if (sl->first) {
            pthread_mutex_lock(&j->mu);
            if (!job_state_terminal(j->state))
                j->state = JOB_RUNNING;
            j->started_ns = job_now_ns();
            j->started_unix = job_unix_now();
            job_emit_locked(j, "started", json_pack("{s:s,s:f}", "id", j->id,
                                                    "started", j->started_unix));
            pthread_mutex_unlock(&j->mu);
            metrics_observe_ns(&metrics.queue_wait, (uint64_t)(j->started_ns - j->created_ns));
            if (j->kind != JOB_KIND_SYNC)
                notify(s, j);
        }
        request_to_params(&j->req, j->seed, sl->index, &p);
        rc = ditd_image_new(&sl->img, s->model, &p, err, sizeof(err));
        if (rc == 0 && ditd_image_rows(sl->img) != j->rows) {
            snprintf(err, sizeof(err), "the engine wants %d rows per step, the scheduler counted %d",
                     ditd_image_rows(sl->img), j->rows);
            rc = DITD_EINVAL;
        }
        if (rc == 0)
            metrics_gauge_add(&metrics.images_running, 1);
        else
            fail_job(s, j, rc == DITD_ENOMEM ? "server_error" : "invalid_request_error", err);
    }
}

/* Drop images whose job was cancelled, failed or ran out of time. */
static void drop_cancelled(struct sched *s, struct sched_worker *ws)
{
    int64_t now = job_now_ns();
    int abort_reason = atomic_load(&s->abort_reason);

    for (int i = 0; i < ws->n;) {
        struct job *j = ws->slots[i].job;

        if (!atomic_load(&j->cancel) && abort_reason >= 0)
            sched_cancel(s, j, abort_reason);
        if (!atomic_load(&j->cancel) && j->deadline_ns && now > j->deadline_ns)
            sched_cancel(s, j, CANCEL_DEADLINE);
        if (atomic_load(&j->cancel))
            drop_slot(s, ws, i);
        else
            i++;
    }
}

/* The PNG of the k-th image of a job, with the engine's metadata. */
static int encode_png(struct sched *s, const struct job *j, int k, const uint8_t *rgb,
                      int size, uint8_t **png, size_t *len)
{
    struct ditd_params p;
    struct ditd_png_meta meta;

    request_to_params(&j->req, j->seed, k, &p);
    ditd_png_metadata(s->model, &p, 1, &meta);
    return ditd_png_encode(rgb, size, size, 3, meta.text, meta.n, png, len);
}

/* Whether slot i's job has an image in this forward before slot i. */
static bool seen_before(const struct sched_worker *ws, int i)
{
    for (int k = 0; k < i; k++)
        if (ws->slots[k].in && ws->slots[k].job == ws->slots[i].job)
            return true;
    return false;
}

/* Progress (and previews) once per job per step. */
static void report_step(struct sched *s, struct ditd_worker *w, struct sched_worker *ws)
{
    for (int i = 0; i < ws->n; i++) {
        struct job *j = ws->slots[i].job;
        long total = (long)j->req.n * j->req.steps;
        int mine = 0;
        double el;

        if (!ws->slots[i].in || seen_before(ws, i))
            continue;
        for (int k = i; k < ws->n; k++)
            mine += ws->slots[k].in && ws->slots[k].job == j;
        pthread_mutex_lock(&j->mu);
        j->steps_done += mine;
        j->batch_sum += ws->nb;
        j->batch_count++;
        if (j->kind != JOB_KIND_SYNC) {
            el = (double)(job_now_ns() - j->started_ns) / 1e6;
            job_emit_locked(j, "progress", json_pack("{s:s,s:I,s:I,s:f,s:f,s:f,s:f,s:i,s:i}",
                "id", j->id, "step", (json_int_t)j->steps_done, "steps", (json_int_t)total,
                "fraction", (double)j->steps_done / (double)total, "elapsed_ms", el,
                "eta_ms", el / (double)j->steps_done * (double)(total - j->steps_done),
                "steps_per_second", el > 0 ? (double)j->steps_done * 1000.0 / el : 0.0,
                "images_done", j->images_done, "batch_size", ws->nb));
        }
        pthread_mutex_unlock(&j->mu);
    }
    for (int i = 0; i < ws->n; i++) {
        struct slot *sl = &ws->slots[i];
        struct job *j = sl->job;
        int done = ditd_image_steps_done(sl->img);
        uint8_t *png = NULL;
        size_t len = 0;
        struct buf b;

        if (!sl->in || j->kind == JOB_KIND_SYNC || j->req.preview <= 0 ||
            done % j->req.preview || ditd_image_done(sl->img))
            continue;
        if (ditd_image_preview(w, sl->img, DITD_PREVIEW_AUTO, ws->preview) < 0 ||
            ditd_png_encode(ws->preview, ws->image_size, ws->image_size, 3, NULL, 0,
                            &png, &len) < 0)
            continue;
        buf_init(&b, 0);
        buf_base64(&b, png, len);
        free(png);
        if (!b.err)
            job_emit(j, "preview", json_pack("{s:s,s:I,s:i,s:i,s:s,s:s,s:s}", "id", j->id,
                                             "index", job_image_index(j, sl->index), "step", done,
                                             "size", ws->image_size, "method", s->preview_method,
                                             "mime", "image/png", "b64", b.data));
        buf_free(&b);
        metrics_add(&metrics.previews, 1);
    }
    /* Only streams and /jobs watchers care about progress; a plain request
     * waits for the end, so waking the loop for it would only steal CPU
     * from the computation. */
    for (int i = 0; i < ws->n; i++)
        if (ws->slots[i].in && !seen_before(ws, i) && ws->slots[i].job->kind != JOB_KIND_SYNC)
            notify(s, ws->slots[i].job);
}

/* Store one encoded image in its job; returns true when the job is done. */
static bool deliver(struct job *j, int index, uint8_t *png, size_t len, uint64_t decode_ns,
                    uint64_t encode_ns, int64_t denoised_ns)
{
    bool complete;
    struct buf b;

    buf_init(&b, 0);
    if (j->kind != JOB_KIND_SYNC)
        buf_base64(&b, png, len);
    pthread_mutex_lock(&j->mu);
    j->images[index].png = png;
    j->images[index].png_len = len;
    j->images_done++;
    j->decode_ns += decode_ns;
    j->encode_ns += encode_ns;
    if (j->images_done == 1)
        metrics_observe_ns(&metrics.first_image, (uint64_t)(job_now_ns() - j->created_ns));
    complete = j->images_done == j->req.n;
    if (complete)
        j->sampled_ns = denoised_ns;
    if (j->kind != JOB_KIND_SYNC && !b.err)
        job_emit_locked(j, "image", json_pack("{s:s,s:I,s:I,s:i,s:s,s:s}", "id", j->id,
                                              "index", job_image_index(j, index),
                                              "seed", (json_int_t)j->seed,
                                              "class", j->req.class_id, "mime", "image/png",
                                              "b64", b.data));
    pthread_mutex_unlock(&j->mu);
    buf_free(&b);
    metrics_add(&metrics.images, 1);
    return complete;
}

static void finish_images(struct sched *s, struct ditd_worker *w, struct sched_worker *ws)
{
    size_t frame = (size_t)ws->image_size * (size_t)ws->image_size * 3;
    int64_t t0, t1;
    int done[ws->n > 0 ? ws->n : 1];
    int nd = 0;
    int rc;

    for (int i = 0; i < ws->n; i++)
        if (ditd_image_done(ws->slots[i].img))
            done[nd++] = i;
    if (!nd)
        return;
    for (int k = 0; k < nd; k++)
        ws->imgs[k] = ws->slots[done[k]].img;
    t0 = job_now_ns();
    rc = ditd_decode(w, ws->imgs, nd, ws->rgb);
    t1 = job_now_ns();
    metrics_observe_ns(&metrics.decode, (uint64_t)(t1 - t0));
    ws->decode_ns += t1 - t0;
    ws->decoded += nd;
    /* Walk backwards so removing a slot keeps the earlier indices valid. */
    for (int k = nd - 1; k >= 0; k--) {
        struct slot *sl = &ws->slots[done[k]];
        struct job *j = sl->job;
        uint8_t *png = NULL;
        size_t len = 0;
        int64_t e0 = job_now_ns();
        bool complete, last;

        if (rc < 0) {
            fail_job(s, j, "server_error", "the VAE decode failed");
            drop_slot(s, ws, done[k]);
            continue;
        }
        if (atomic_load(&j->cancel) ||
            encode_png(s, j, sl->index, ws->rgb + (size_t)k * frame, ws->image_size,
                       &png, &len) < 0) {
            if (!atomic_load(&j->cancel))
                fail_job(s, j, "server_error", "PNG encoding failed (out of memory?)");
            drop_slot(s, ws, done[k]);
            continue;
        }
        metrics_observe_ns(&metrics.encode, (uint64_t)(job_now_ns() - e0));
        complete = deliver(j, sl->index, png, len, (uint64_t)(t1 - t0) / (uint64_t)nd,
                           (uint64_t)(job_now_ns() - e0), t0);
        ditd_image_free(sl->img);
        metrics_gauge_add(&metrics.images_running, -1);
        remove_slot(ws, done[k]);
        pthread_mutex_lock(&s->mu);
        j->images_live--;
        last = j->images_live == 0 && !j->queued;
        pthread_mutex_unlock(&s->mu);
        if (complete || (last && atomic_load(&j->cancel)))
            finish_job(s, j, true);
        else if (j->kind != JOB_KIND_SYNC)
            notify(s, j);
        job_unref(j);
    }
}

/* The fault-injection hook (tests only): does this batch hold the marked job? */
static bool fault_due(const struct sched *s, const struct sched_worker *ws)
{
    for (int i = 0; s->fail_seed >= 0 && i < ws->n; i++)
        if (ws->slots[i].in && ws->slots[i].job->seed == (uint64_t)s->fail_seed &&
            ditd_image_steps_done(ws->slots[i].img) >= 2)
            return true;
    return false;
}

/* One forward over the images the fairness policy picks (policy.h). */
static void step(struct sched *s, struct ditd_worker *w, struct sched_worker *ws)
{
    enum policy_kind kind;
    int64_t t0, took;
    int rows;
    int rc;

    for (int i = 0; i < ws->n; i++)
        ws->pimg[i] = (struct policy_image){ ws->slots[i].job->rows,
                                             job_size(ws->slots[i].job) };
    rows = policy_select(&ws->policy, ws->pimg, ws->n, ws->sel, &kind);
    ws->nb = 0;
    for (int i = 0; i < ws->n; i++) {
        ws->slots[i].in = ws->sel[i];
        if (ws->sel[i])
            ws->imgs[ws->nb++] = ws->slots[i].img;
    }
    t0 = job_now_ns();
    if (s->slow_step_ms > 0) {
        struct timespec ts = { s->slow_step_ms / 1000, (long)(s->slow_step_ms % 1000) * 1000000 };

        nanosleep(&ts, NULL);
    }
    rc = fault_due(s, ws) ? DITD_EIO : ditd_step(w, ws->imgs, ws->nb);
    took = job_now_ns() - t0;
    metrics_observe_ns(&metrics.forward, (uint64_t)took);
    policy_account(&ws->policy, kind, took);
    if (rc < 0) {
        for (int i = ws->n - 1; i >= 0; i--) {
            if (!ws->slots[i].in)
                continue;
            fail_job(s, ws->slots[i].job, "server_error", "a denoising step failed in the engine");
            drop_slot(s, ws, i);
        }
        return;
    }
    ws->forward_ns = took;
    ws->forward_rows = rows;
    metrics_add(&metrics.forwards, 1);
    metrics_add(&metrics.steps, (uint64_t)ws->nb);
    metrics_observe(&metrics.batch_size, (uint64_t)ws->nb);
    metrics_observe(&metrics.batch_rows, (uint64_t)rows);
    report_step(s, w, ws);
}

/* The busy flag feeds the watchdog test and the workers_busy gauge. */
static void set_busy(struct sched *s, int idx, bool busy)
{
    if (atomic_exchange(&s->busy[idx], busy) != busy)
        metrics_gauge_add(&metrics.workers_busy, busy ? 1 : -1);
}

struct sched_worker *sched_worker_new(struct sched *s)
{
    const struct ditd_model_info *mi = ditd_model_info(s->model);
    struct sched_worker *ws = calloc(1, sizeof(*ws));

    if (!ws)
        return NULL;
    ws->image_size = mi->image_size;
    policy_init(&ws->policy, s->max_rows);
    /* Resident images take up to 2 x max_rows rows (policy_admit). */
    ws->slots = calloc(2 * (size_t)s->max_rows, sizeof(*ws->slots));
    ws->pimg = calloc(2 * (size_t)s->max_rows, sizeof(*ws->pimg));
    ws->sel = calloc(2 * (size_t)s->max_rows, sizeof(*ws->sel));
    ws->snap = calloc(2 * (size_t)s->max_rows, sizeof(*ws->snap));
    ws->imgs = calloc((size_t)s->max_rows, sizeof(*ws->imgs));
    ws->rgb = malloc((size_t)s->max_rows * (size_t)mi->image_size * (size_t)mi->image_size * 3);
    ws->preview = malloc((size_t)mi->image_size * (size_t)mi->image_size * 3);
    if (!ws->slots || !ws->pimg || !ws->sel || !ws->snap || !ws->imgs || !ws->rgb ||
        !ws->preview) {
        sched_worker_free(ws);
        return NULL;
    }
    return ws;
}

void sched_worker_free(struct sched_worker *ws)
{
    if (!ws)
        return;
    free(ws->slots);
    free(ws->pimg);
    free(ws->sel);
    free(ws->snap);
    free(ws->imgs);
    free(ws->rgb);
    free(ws->preview);
    free(ws);
}

void sched_worker_run(struct sched *s, struct ditd_worker *w, struct sched_worker *ws, int idx)
{
    pthread_mutex_lock(&s->mu);
    s->workers[idx] = ws;
    if (s->nworkers <= idx)
        s->nworkers = idx + 1;
    pthread_mutex_unlock(&s->mu);
    for (;;) {
        atomic_store(&s->beat[idx], job_now_ns());
        pthread_mutex_lock(&s->mu);
        while (ws->n == 0 && !s->qhead && !s->closing) {
            set_busy(s, idx, false);
            pthread_cond_wait(&s->cv, &s->mu);
        }
        if (ws->n == 0 && !s->qhead && s->closing) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        admit(s, ws);
        pthread_mutex_unlock(&s->mu);
        atomic_store(&s->beat[idx], job_now_ns());
        set_busy(s, idx, ws->n > 0);
        start_images(s, ws);
        drop_cancelled(s, ws);
        if (ws->n == 0)
            continue;
        step(s, w, ws);
        atomic_store(&s->beat[idx], job_now_ns());
        finish_images(s, w, ws);
    }
    pthread_mutex_lock(&s->mu);
    s->workers[idx] = NULL;
    pthread_mutex_unlock(&s->mu);
    set_busy(s, idx, false);
}
