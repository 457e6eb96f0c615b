/*
 * dispatch: map request-targets read from standard input to back-end servers with libvibra.
 *
 *   dispatch SERVERS REPLICATION HASH [DOWN,DOWN,...] < targets.txt
 *
 * HASH is charsum, md5, sha1 or fast; DOWN lists servers marked unavailable. For each line it
 * prints "<sub-namespace> <s1>,<s2>,..." (the subset in order, as `vibra-lab map` does), then
 * on standard error how many requests each server took when every request is dispatched with
 * the built-in connection counters and held open.
 *
 * Build: cc -std=c99 dispatch.c $(pkg-config --cflags --libs vibra) -o dispatch
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <vibra.h>

static void fail(const char *what, vibra_status status) {
    char message[256];
    vibra_last_error(message, sizeof message);
    fprintf(stderr, "dispatch: %s: %s (%s)\n", what, vibra_status_str(status), message);
    exit(1);
}

static int parse_u32(const char *text, uint32_t *out) {
    char *end;
    unsigned long value = strtoul(text, &end, 10);
    if (*text == '\0' || *end != '\0' || value > UINT32_MAX) {
        return 0;
    }
    *out = (uint32_t)value;
    return 1;
}

static int parse_hash(const char *name, vibra_hash *out) {
    static const char *const names[] = {"charsum", "md5", "sha1", "fast"};
    static const vibra_hash codes[] = {VIBRA_HASH_CHARSUM, VIBRA_HASH_MD5, VIBRA_HASH_SHA1,
                                       VIBRA_HASH_FAST};
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = codes[i];
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    uint32_t servers, replication, server;
    vibra_hash hash;
    vibra_dispatcher *d = NULL;
    vibra_status status;
    uint32_t *subset, *taken;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t n;

    if (vibra_abi_version() != VIBRA_ABI_VERSION) {
        fprintf(stderr, "dispatch: libvibra ABI %u, compiled for %u\n",
                (unsigned)vibra_abi_version(), (unsigned)VIBRA_ABI_VERSION);
        return 1;
    }
    if (argc < 4 || argc > 5 || !parse_u32(argv[1], &servers) ||
        !parse_u32(argv[2], &replication) || !parse_hash(argv[3], &hash)) {
        fprintf(stderr, "usage: dispatch SERVERS REPLICATION charsum|md5|sha1|fast [DOWN,...]\n");
        return 2;
    }
    status = vibra_dispatcher_new(servers, replication, hash, &d);
    if (status != VIBRA_OK) {
        fail("vibra_dispatcher_new", status);
    }
    if (argc == 5) {
        char *list = argv[4], *item;
        for (item = strtok(list, ","); item != NULL; item = strtok(NULL, ",")) {
            if (!parse_u32(item, &server)) {
                fprintf(stderr, "dispatch: bad server '%s' in the down list\n", item);
                return 2;
            }
            status = vibra_dispatcher_set_available(d, server, false);
            if (status != VIBRA_OK) {
                fail("vibra_dispatcher_set_available", status);
            }
        }
    }

    subset = calloc(replication, sizeof *subset);
    taken = calloc(servers, sizeof *taken);
    if (subset == NULL || taken == NULL) {
        fprintf(stderr, "dispatch: out of memory\n");
        return 1;
    }
    while ((n = getline(&line, &line_cap, stdin)) > 0) {
        size_t len = (size_t)n, subset_len, i;
        uint32_t ns;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            len--;
        }
        status = vibra_dispatcher_namespace(d, line, len, &ns);
        if (status != VIBRA_OK) {
            fail("vibra_dispatcher_namespace", status);
        }
        status = vibra_dispatcher_subset(d, ns, subset, replication, &subset_len);
        if (status != VIBRA_OK) {
            fail("vibra_dispatcher_subset", status);
        }
        printf("%u ", (unsigned)ns);
        for (i = 0; i < subset_len; i++) {
            printf(i == 0 ? "%u" : ",%u", (unsigned)subset[i]);
        }
        putchar('\n');
        /* Hold every request open: later requests for a busy primary spill to its replicas. */
        status = vibra_dispatcher_acquire(d, line, len, &server);
        if (status != VIBRA_OK) {
            fail("vibra_dispatcher_acquire", status);
        }
        taken[server]++;
    }
    for (server = 0; server < servers; server++) {
        uint32_t k;
        fprintf(stderr, "server %u: %u requests\n", (unsigned)server, (unsigned)taken[server]);
        for (k = 0; k < taken[server]; k++) {
            status = vibra_dispatcher_release(d, server);
            if (status != VIBRA_OK) {
                fail("vibra_dispatcher_release", status);
            }
        }
    }
    free(line);
    free(subset);
    free(taken);
    vibra_dispatcher_free(d);
    return 0;
}
