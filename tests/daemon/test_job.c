/*
 * test_job.c - job lifetime, the event log and its replay from any event
 * id and byte offset, terminal states counted once in the metrics.
 */
#include <jansson.h>
#include <string.h>

#include "job.h"
#include "test.h"

static struct gen_request req(enum job_kind *kind)
{
    struct gen_request r;

    (void)kind;
    memset(&r, 0, sizeof(r));
    r.class_id = 3;
    r.cfg = 4.0;
    r.steps = 10;
    r.n = 2;
    r.seed = 42;
    strcpy(r.sampler_name, "ddpm");
    return r;
}

int main(void)
{
    struct gen_request r = req(NULL);
    struct job *j, *s;
    char out[4096];
    char small[7];
    struct buf all;
    uint64_t after = 0;
    size_t off = 0;
    bool ended = false;
    size_t n;
    json_t *o;

    metrics_init();
    j = job_new(JOB_KIND_ASYNC, &r, 42, 1000000000);
    CHECK(j != NULL);
    CHECK_EQ_INT(strlen(j->id), 16);
    CHECK_EQ_INT(j->rows, 2);
    CHECK(j->deadline_ns > j->created_ns);

    job_emit(j, "queued", json_pack("{s:i}", "queue_position", 3));
    job_emit(j, "started", json_pack("{}"));
    job_emit(j, "progress", json_pack("{s:i,s:i}", "step", 1, "steps", 20));
    CHECK_EQ_INT(j->nevents, 3);

    n = job_read_events(j, &after, &off, out, sizeof(out) - 1, &ended);
    out[n] = '\0';
    CHECK(!ended);
    CHECK_EQ_INT(after, 3);
    CHECK(strncmp(out, "id: 1\nevent: queued\ndata: {", 27) == 0);
    CHECK_STR_CONTAINS(out, "\"type\":\"queued\"");
    CHECK_STR_CONTAINS(out, "id: 3\nevent: progress\n");

    /* Resume after event 1 through a tiny buffer: same bytes as the tail. */
    buf_init(&all, 0);
    after = 1;
    off = 0;
    while ((n = job_read_events(j, &after, &off, small, sizeof(small), &ended)) > 0)
        buf_append(&all, small, n);
    CHECK(strncmp(all.data, "id: 2\nevent: started", 20) == 0);
    CHECK(strstr(out, all.data) != NULL);
    buf_free(&all);

    pthread_mutex_lock(&j->mu);
    CHECK(job_finish_locked(j, JOB_CANCELLED, NULL, NULL));
    CHECK(!job_finish_locked(j, JOB_COMPLETED, NULL, NULL));   /* once only */
    pthread_mutex_unlock(&j->mu);
    CHECK_EQ_INT(metrics.jobs[OUTCOME_CANCELLED], 1);
    CHECK_EQ_INT(metrics.jobs[OUTCOME_COMPLETED], 0);
    CHECK_EQ_INT(metrics.cancelled[CANCEL_CLIENT], 1);
    n = job_read_events(j, &after, &off, out, sizeof(out) - 1, &ended);
    out[n] = '\0';
    CHECK(ended);
    CHECK_STR_CONTAINS(out, "event: cancelled\n");

    o = job_to_json(j, -1);
    CHECK(strcmp(json_string_value(json_object_get(o, "status")), "cancelled") == 0);
    CHECK(strcmp(json_string_value(json_object_get(o, "reason")), "client") == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(o, "request"), "seed")), 42);
    json_decref(o);

    /* An expired job keeps its outcome but no data, and reads as ended. */
    job_expire(j);
    after = 0;
    off = 0;
    CHECK_EQ_INT(job_read_events(j, &after, &off, out, sizeof(out), &ended), 0);
    CHECK(ended);

    /* Sync jobs keep no event log. */
    s = job_new(JOB_KIND_SYNC, &r, 1, 0);
    job_emit(s, "progress", json_pack("{}"));
    CHECK_EQ_INT(s->nevents, 0);
    CHECK_EQ_INT(s->deadline_ns, 0);
    pthread_mutex_lock(&s->mu);
    s->images[0].png = malloc(4);
    s->images[0].png_len = 4;
    CHECK(job_finish_locked(s, JOB_COMPLETED, NULL, NULL));
    pthread_mutex_unlock(&s->mu);
    o = job_to_json(s, -1);
    CHECK_EQ_INT(json_array_size(json_object_get(o, "images")), 1);
    json_decref(o);

    job_ref(s);
    job_unref(s);
    job_unref(s);
    job_unref(j);
    return test_status();
}
