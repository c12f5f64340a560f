/*
 * test_metrics.c - the page parses as Prometheus text: HELP/TYPE once per
 * family, cumulative buckets ending at +Inf equal to _count, counters
 * counted, labels escaped.
 */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "test.h"

static int count_substr(const char *s, const char *sub)
{
    int n = 0;

    for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub))
        n++;
    return n;
}

int main(void)
{
    struct buf b;

    metrics_init();
    metrics_http(EP_GENERATE, 200, 1500000);
    metrics_http(EP_GENERATE, 200, 2500000);
    metrics_http(EP_GENERATE, 429, 100000);
    metrics_http(EP_HEALTH, 299, 1000);   /* an unlisted code counts as "other" */
    metrics_add(&metrics.jobs_received, 3);
    metrics_add(&metrics.jobs[OUTCOME_COMPLETED], 2);
    metrics_reject(REJECT_QUEUE_FULL);
    metrics_observe_ns(&metrics.forward, 3000000);      /* 3 ms */
    metrics_observe_ns(&metrics.forward, 700000000000); /* 700 s: only +Inf */
    metrics_observe(&metrics.batch_size, 8);
    strcpy(metrics.model_name, "we\"ird\\name\n");

    buf_init(&b, 0);
    CHECK_EQ_INT(metrics_render(&b), 0);
    CHECK_STR_CONTAINS(b.data, "ditd_http_requests_total{endpoint=\"generate\",code=\"200\"} 2\n");
    CHECK_STR_CONTAINS(b.data, "ditd_http_requests_total{endpoint=\"generate\",code=\"429\"} 1\n");
    CHECK_STR_CONTAINS(b.data, "ditd_http_requests_total{endpoint=\"health\",code=\"other\"} 1\n");
    CHECK_STR_CONTAINS(b.data, "ditd_jobs_total{outcome=\"rejected\"} 1\n");
    CHECK_STR_CONTAINS(b.data, "ditd_jobs_rejected_total{reason=\"queue_full\"} 1\n");
    CHECK_STR_CONTAINS(b.data, "ditd_forward_duration_seconds_bucket{le=\"0.0025\"} 0\n");
    CHECK_STR_CONTAINS(b.data, "ditd_forward_duration_seconds_bucket{le=\"0.005\"} 1\n");
    CHECK_STR_CONTAINS(b.data, "ditd_forward_duration_seconds_bucket{le=\"600\"} 1\n");
    CHECK_STR_CONTAINS(b.data, "ditd_forward_duration_seconds_bucket{le=\"+Inf\"} 2\n");
    CHECK_STR_CONTAINS(b.data, "ditd_forward_duration_seconds_count 2\n");
    CHECK_STR_CONTAINS(b.data, "ditd_forward_duration_seconds_sum 700.003\n");
    CHECK_STR_CONTAINS(b.data, "ditd_batch_size_bucket{le=\"8\"} 1\n");
    CHECK_STR_CONTAINS(b.data, "ditd_request_duration_seconds_count{endpoint=\"generate\"} 3\n");
    CHECK_STR_CONTAINS(b.data, "model=\"we\\\"ird\\\\name\\n\"");
    CHECK_STR_CONTAINS(b.data, "# TYPE process_cpu_seconds_total counter\n");
    CHECK_STR_CONTAINS(b.data, "process_open_fds ");
    CHECK_EQ_INT(count_substr(b.data, "# TYPE ditd_request_duration_seconds "), 1);
    CHECK_EQ_INT(count_substr(b.data, "# HELP ditd_jobs_total "), 1);
    CHECK(b.len > 0 && b.data[b.len - 1] == '\n');
    buf_free(&b);

    /* buf: the hard maximum is sticky. */
    buf_init(&b, 8);
    CHECK_EQ_INT(buf_puts(&b, "12345678"), 0);
    CHECK(buf_puts(&b, "9") < 0);
    CHECK(b.err < 0);
    buf_free(&b);
    buf_init(&b, 0);
    buf_base64(&b, (const unsigned char *)"foobar", 6);
    buf_base64(&b, (const unsigned char *)"fo", 2);
    buf_base64(&b, (const unsigned char *)"f", 1);
    CHECK(strcmp(b.data, "Zm9vYmFyZm8=Zg==") == 0);
    buf_free(&b);
    return test_status();
}
