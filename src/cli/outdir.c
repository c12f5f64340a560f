/*
 * outdir.c - the files of `dit generate --outdir DIR`: their names, the
 * check before a run, and --resume's survey of what an interrupted run left.
 *
 * A run of tens of thousands of images takes hours and can be stopped at any
 * point. Every image depends only on its own parameters, so a second run
 * with the same ones can make just the missing files. The survey reads each
 * existing file whole: a PNG cut short by a kill is made again, and one made
 * by another run (other seed, class, model...) stops the resume rather than
 * mixing two runs in one directory.
 */
#include "outdir.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* A generated image is far smaller; this bounds a stray file's read. */
#define OUTDIR_MAX_PNG ((size_t)256 << 20)

void outdir_path(char *buf, size_t len, const char *dir, uint64_t number)
{
    snprintf(buf, len, "%s/%06llu.png", dir, (unsigned long long)number);
}

int outdir_make_dirs(const char *dir)
{
    char path[4096];
    size_t len = strlen(dir);

    if (len == 0)
        return ENOENT;
    if (len >= sizeof(path))
        return ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    for (char *s = path + 1; ; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        const char c = *s;
        *s = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return errno;
        *s = c;
        if (!c)
            return 0;
    }
}

int outdir_prepare(const char *dir, uint32_t index, long total, int force)
{
    char path[4096];
    struct stat st;
    int e;

    if ((e = outdir_make_dirs(dir)) != 0)
        return cli_fail("cannot create %s: %s", dir, strerror(e));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_fail("%s is a file, not a folder; give --outdir a folder", dir);
    if (access(dir, W_OK) != 0)
        return cli_fail("cannot write into %s: %s", dir, strerror(errno));
    for (long g = 0; g < total && !force; g++) {
        outdir_path(path, sizeof(path), dir, (uint64_t)index + (uint64_t)g);
        if (access(path, F_OK) == 0)
            return cli_fail("%s already exists; pass --resume to make only the images that are "
                            "missing, or --force to overwrite %s", path,
                            total > 1 ? "every image of this run" : "it");
    }
    return 0;
}

/* The whole file into *buf (reused between calls, grown as needed); 0, or
 * an errno value. */
static int read_whole(const char *path, uint8_t **buf, size_t *cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    int rc = 0;

    if (!f)
        return errno;
    if (fstat(fileno(f), &st) != 0) {
        rc = errno;
        goto out;
    }
    if ((size_t)st.st_size > OUTDIR_MAX_PNG) {
        rc = EFBIG;
        goto out;
    }
    if ((size_t)st.st_size > *cap) {
        uint8_t *more = realloc(*buf, (size_t)st.st_size);
        if (!more) {
            rc = ENOMEM;
            goto out;
        }
        *buf = more;
        *cap = (size_t)st.st_size;
    }
    *len = fread(*buf, 1, (size_t)st.st_size, f);
    if (ferror(f))
        rc = EIO;
out:
    fclose(f);
    return rc;
}

/* The encoder ends every PNG with this chunk; a file cut short lacks it. */
static int png_complete(const uint8_t *png, size_t len)
{
    static const uint8_t iend[12] = { 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82 };
    return len >= 8 + sizeof(iend) && memcmp(png + len - sizeof(iend), iend, sizeof(iend)) == 0;
}

int outdir_survey(const char *dir, uint32_t index, long total, outdir_same_fn same, void *ctx,
                  uint8_t *done, long *ndone, long *nredo)
{
    char path[4096], err[DITD_ERR_LEN], why[256];
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    struct ditd_png_origin have;
    int rc = 1, e;

    *ndone = *nredo = 0;
    for (long g = 0; g < total; g++) {
        outdir_path(path, sizeof(path), dir, (uint64_t)index + (uint64_t)g);
        if ((e = read_whole(path, &buf, &cap, &len)) == ENOENT)
            continue;
        if (e != 0) {
            cli_fail("--resume: cannot read %s: %s", path, strerror(e));
            goto out;
        }
        /* Cut short (by a kill while it was written): made again. A file
         * that is not one of our PNGs is not ours to overwrite. */
        if (len < 8 || memcmp(buf, "\x89PNG\r\n\x1a\n", 8) != 0) {
            cli_fail("--resume: %s is not a PNG; move it away and resume again", path);
            goto out;
        }
        if (!png_complete(buf, len)) {
            (*nredo)++;
            continue;
        }
        if (ditd_png_metadata_read(buf, len, &have, err, sizeof(err)) != 0) {
            cli_fail("--resume: %s is a whole PNG that dit did not write (%s); move it away "
                     "and resume again", path, err);
            goto out;
        }
        if (!same(ctx, g, &have, why, sizeof(why))) {
            cli_fail("--resume: %s was made by another run (%s); resume with that run's "
                     "parameters, or write this run to another --outdir", path, why);
            goto out;
        }
        done[g / 8] |= (uint8_t)(1u << (g % 8));
        (*ndone)++;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

int outdir_read_rgb(const char *path, int size, uint8_t *rgb, char *err, size_t errlen)
{
    png_image img;

    memset(&img, 0, sizeof(img));
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) {
        snprintf(err, errlen, "%s: %s", path, img.message);
        return -1;
    }
    if (img.width != (png_uint_32)size || img.height != (png_uint_32)size) {
        snprintf(err, errlen, "%s is %ux%u, not the model's %dx%d", path, (unsigned)img.width,
                 (unsigned)img.height, size, size);
        png_image_free(&img);
        return -1;
    }
    img.format = PNG_FORMAT_RGB;
    if (!png_image_finish_read(&img, NULL, rgb, 0, NULL)) {
        snprintf(err, errlen, "%s: %s", path, img.message);
        png_image_free(&img);
        return -1;
    }
    return 0;
}
