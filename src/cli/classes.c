/*
 * classes.c - the --class list of `dit generate`: one class by id or name,
 * several (3,7,bag), id ranges (0-9) or all, resolved against the model's
 * labels into ids in the order given.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct class_list {
    int *ids, n;
};

static int add_class(struct class_list *l, int id)
{
    if ((l->n & (l->n - 1)) == 0) {   /* 0, 1, 2, 4, ...: grow */
        int *more = realloc(l->ids, sizeof(int) * (size_t)(l->n ? 2 * l->n : 1));
        if (!more)
            return cli_fail("out of memory for the --class list");
        l->ids = more;
    }
    l->ids[l->n++] = id;
    return 0;
}

static int add_classes(struct class_list *l, long first, long last)
{
    for (long c = first; c <= last; c++)
        if (add_class(l, (int)c))
            return 1;
    return 0;
}

/* "A-B" with A and B whole decimal numbers: 1 and the two, else 0. */
static int id_range(const char *item, long *a, long *b)
{
    char *end;
    if (*item < '0' || *item > '9')
        return 0;
    *a = strtol(item, &end, 10);
    if (*end != '-' || end[1] < '0' || end[1] > '9')
        return 0;
    *b = strtol(end + 1, &end, 10);
    return *end == '\0';
}

/* The --class list, in order: one id or name, "all", or a comma-separated
 * list of ids, names and id ranges A-B. The whole text is tried as one
 * class first, so that a name holding '-' is found; a name never holds ','
 * (the labels separate synonyms with it). Without --class, `fallback`. */
static int parse_list(struct class_list *l, const char *text, int fallback,
                      const struct ditd_model *m)
{
    const int nc = ditd_model_info(m)->num_classes;
    char item[256];
    int id;
    long a, b;

    if (!text)
        return add_class(l, fallback);
    if ((id = ditd_model_class(m, text)) >= 0)
        return add_class(l, id);
    if (strcmp(text, "all") == 0)
        return add_classes(l, 0, nc - 1);
    for (const char *s = text;;) {
        const size_t len = strcspn(s, ",");
        if (len == 0 || len >= sizeof(item))
            return cli_fail("--class \"%s\": an item is %s", text,
                            len ? "too long" : "empty (two commas, or one at an end)");
        memcpy(item, s, len);
        item[len] = '\0';
        if (id_range(item, &a, &b)) {
            if (a > b || b >= nc)
                return cli_fail("--class range %s: the ids of this model run from 0 to %d, "
                                "low to high", item, nc - 1);
            if (add_classes(l, a, b))
                return 1;
        } else if ((id = ditd_model_class(m, item)) >= 0) {
            if (add_class(l, id))
                return 1;
        } else {
            return cli_fail("unknown class \"%s\": use an id from 0 to %d, a name (dit info "
                            "lists them), a list such as 3,7,bag, a range such as 0-9, or all",
                            item, nc - 1);
        }
        if (!s[len])
            return 0;
        s += len + 1;
    }
}


int cli_class_list(const char *text, int fallback, const struct ditd_model *m, int **ids, int *n)
{
    struct class_list l = { NULL, 0 };

    if (parse_list(&l, text, fallback, m) != 0) {
        free(l.ids);
        return 1;
    }
    *ids = l.ids;
    *n = l.n;
    return 0;
}
