/*
 * locate.c - which model a program uses when it is not told: the bundled
 * model of the source tree for a program run from its build tree, the
 * installed copy for an installed program (docs/operations.md "Which
 * model"). The build tree is recognised by where the running executable
 * lives, so an installed binary never picks up a source tree that happens
 * to still exist, and an install that was moved (or staged with DESTDIR)
 * finds the model installed beside it.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ditd-build.h"
#include "ditd.h"

static bool is_model_dir(const char *dir)
{
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof(probe), "%.*s/transformer/config.json", PATH_MAX, dir);
    return access(probe, R_OK) == 0;
}

/* The running executable's directory, resolved; false when unknown. */
static bool exe_dir(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return false;
    *slash = '\0';
    snprintf(out, len, "%s", exe[0] ? exe : "/");
    return true;
}

static bool under(const char *dir, const char *root)
{
    char real[PATH_MAX];
    size_t n;

    if (!realpath(root, real))
        return false;
    n = strlen(real);
    return strncmp(dir, real, n) == 0 && (dir[n] == '/' || dir[n] == '\0');
}

int ditd_model_default_path(char *out, size_t len)
{
    const char *env = getenv("DITD_MODEL");
    char dir[PATH_MAX], beside[PATH_MAX + 64], real[PATH_MAX];
    bool have_dir = exe_dir(dir, sizeof(dir));

    if (env && *env) {
        snprintf(out, len, "%s", env);
        return 0;
    }
    if (have_dir && under(dir, DITD_BUILD_ROOT) && is_model_dir(DITD_SOURCE_MODEL_DIR)) {
        snprintf(out, len, "%s", DITD_SOURCE_MODEL_DIR);
        return 0;
    }
    if (have_dir && DITD_BINDIR_TO_MODEL[0]) {
        snprintf(beside, sizeof(beside), "%s/%s", dir, DITD_BINDIR_TO_MODEL);
        if (is_model_dir(beside)) {
            snprintf(out, len, "%s", realpath(beside, real) ? real : beside);
            return 0;
        }
    }
    snprintf(out, len, "%s", DITD_INSTALLED_MODEL_DIR);
    return is_model_dir(DITD_INSTALLED_MODEL_DIR) ? 0 : DITD_ENOENT;
}
