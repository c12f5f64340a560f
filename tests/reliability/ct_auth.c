/*
 * ct_auth.c - driver for the constant-time test of the API key compare:
 * configures three keys and presents one candidate to auth_key_ok(), chosen
 * by argv[1]. test_reliability.py constant_time_auth runs it under callgrind
 * with --toggle-collect=auth_key_ok and compares the instruction counts.
 *
 *   ct_auth equal|first|last|shorter|longer|empty_prefix|other
 */
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "config.h"

#define SECRET "3f9c1a7e5b2d48c6a0e1f7b9d3c5e7a1"   /* 32 bytes */

int main(int argc, char **argv)
{
    static struct config cfg;
    struct auth a = { 0 };
    char err[256];
    char key[64];
    bool ok;

    if (argc != 2)
        return 2;
    config_defaults(&cfg);
    snprintf(cfg.api_keys, sizeof(cfg.api_keys), "%s,second-key-0123456789,%s-x", SECRET, SECRET);
    if (auth_load(&a, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "ct_auth: %s\n", err);
        return 2;
    }
    snprintf(key, sizeof(key), "%s", SECRET);
    if (strcmp(argv[1], "first") == 0)
        key[0] ^= 1;
    else if (strcmp(argv[1], "last") == 0)
        key[31] ^= 1;
    else if (strcmp(argv[1], "shorter") == 0)
        key[31] = '\0';
    else if (strcmp(argv[1], "longer") == 0)
        strcat(key, "0");
    else if (strcmp(argv[1], "empty_prefix") == 0)
        memset(key, 'z', 32);
    else if (strcmp(argv[1], "other") == 0)
        snprintf(key, sizeof(key), "%s", "completely-different-key-value!!");
    else if (strcmp(argv[1], "equal") != 0)
        return 2;
    ok = auth_key_ok(&a, key, strlen(key));
    auth_free(&a);
    /* Only "equal" names a configured key. */
    return ok == (strcmp(argv[1], "equal") == 0) ? 0 : 1;
}
