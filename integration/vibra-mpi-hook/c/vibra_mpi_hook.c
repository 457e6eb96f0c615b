/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vibra_mpi_hook.c: PMPI interposition library for DPS upstream inference (dissertation 5.4.4).
 *
 * Load it with LD_PRELOAD (mpirun -x LD_PRELOAD=.../libvibra_mpi_hook.so) or link it before
 * libmpi. It replaces the blocking receives, waits and collectives of the C bindings by a
 * test-and-sleep loop on their non-blocking forms, so a waiting rank gives its CPU away instead
 * of busy-polling, and it adds up per peer rank how long each wait lasted. Every
 * VIBRA_MPI_FLUSH_MS it sends one vibra_mpi_wait record per (kind, peer) that was waited on to
 * the Unix datagram socket named by VIBRA_MPI_SOCKET (no variable, no socket or a full socket:
 * the record is dropped and counted, the program never notices). See ../README.md.
 */
#define _GNU_SOURCE
#include <mpi.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vibra_mpi_wait.h"

#define TRACK_SLOTS 256
#define STACK_REQS 64

struct acc {
    uint64_t ns;
    uint32_t n;
};

struct tracked {
    MPI_Request req;
    MPI_Comm comm;
};

static struct {
    int active;
    int rank;
    int size;
    uint64_t job;
    uint32_t pid;
    int sock;
    struct sockaddr_un addr;
    socklen_t addrlen;
    uint64_t spin_ns;
    uint64_t min_sleep_ns;
    uint64_t max_sleep_ns;
    uint64_t flush_ns;
    uint64_t interval_start;
    int summary;
    struct acc *acc;   /* [2][size]: this interval */
    struct acc *total; /* [2][size]: since MPI_Init, for the summary */
    uint64_t sent;
    uint64_t dropped;
    MPI_Group world_group;
    struct tracked track[TRACK_SLOTS];
    int track_hwm;
    int track_next;
} H = {.sock = -1};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t env_u64(const char *name, uint64_t dflt, uint64_t unit)
{
    const char *s = getenv(name);
    char *end;
    unsigned long long v;
    if (s == NULL || *s == '\0') {
        return dflt * unit;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        fprintf(stderr, "vibra-mpi-hook: ignoring %s=%s (not a number)\n", name, s);
        return dflt * unit;
    }
    return (uint64_t)v * unit;
}

/* ---- waiting: poll, then sleep with doubling backoff ------------------------------------- */

struct backoff {
    uint64_t t0;
    uint64_t sleep_ns;
};

static void backoff_start(struct backoff *b)
{
    b->t0 = now_ns();
    b->sleep_ns = 0;
}

/* Called after each unsuccessful test: polls again at once during the spin phase, then sleeps
 * min_sleep, 2*min_sleep, ... up to max_sleep. */
static void backoff_pause(struct backoff *b)
{
    struct timespec ts;
    if (now_ns() - b->t0 < H.spin_ns) {
        return;
    }
    if (b->sleep_ns == 0) {
        b->sleep_ns = H.min_sleep_ns;
    } else if (b->sleep_ns < H.max_sleep_ns) {
        b->sleep_ns *= 2;
        if (b->sleep_ns > H.max_sleep_ns) {
            b->sleep_ns = H.max_sleep_ns;
        }
    }
    ts.tv_sec = (time_t)(b->sleep_ns / 1000000000ull);
    ts.tv_nsec = (long)(b->sleep_ns % 1000000000ull);
    nanosleep(&ts, NULL);
}

/* ---- accounting -------------------------------------------------------------------------- */

static void flush(uint64_t now)
{
    int kind, peer;
    for (kind = 0; kind < 2; kind++) {
        for (peer = 0; peer < H.size; peer++) {
            struct acc *a = &H.acc[kind * H.size + peer];
            struct vibra_mpi_wait r;
            uint8_t buf[VIBRA_MPI_WAIT_LEN];
            if (a->n == 0) {
                continue;
            }
            r.kind = (uint16_t)kind;
            r.job = H.job;
            r.pid = H.pid;
            r.rank = (uint32_t)H.rank;
            r.world_size = (uint32_t)H.size;
            r.peer = (uint32_t)peer;
            r.waits = a->n;
            r.wait_ns = a->ns;
            r.start_ns = H.interval_start;
            r.end_ns = now;
            vibra_mpi_wait_encode(&r, buf);
            if (H.sock >= 0 && sendto(H.sock, buf, sizeof buf, MSG_DONTWAIT | MSG_NOSIGNAL,
                                      (const struct sockaddr *)&H.addr, H.addrlen) ==
                                   (ssize_t)sizeof buf) {
                H.sent++;
            } else {
                H.dropped++;
            }
            a->n = 0;
            a->ns = 0;
        }
    }
    H.interval_start = now;
}

static void maybe_flush(void)
{
    uint64_t now = now_ns();
    if (now - H.interval_start >= H.flush_ns) {
        flush(now);
    }
}

static void add(int kind, int world_peer, uint64_t ns)
{
    int i = kind * H.size + world_peer;
    if (world_peer < 0 || world_peer >= H.size || world_peer == H.rank) {
        return;
    }
    H.acc[i].ns += ns;
    H.acc[i].n++;
    H.total[i].ns += ns;
    H.total[i].n++;
}

/* Translates `n` ranks of `comm` to MPI_COMM_WORLD ranks in place (MPI_UNDEFINED if absent).
 * Intercommunicators: the ranks are in the remote group. */
static void to_world(MPI_Comm comm, int *ranks, int n)
{
    MPI_Group g;
    int inter = 0, i;
    int *out;
    if (comm == MPI_COMM_WORLD) {
        return;
    }
    PMPI_Comm_test_inter(comm, &inter);
    if ((inter ? PMPI_Comm_remote_group(comm, &g) : PMPI_Comm_group(comm, &g)) != MPI_SUCCESS) {
        for (i = 0; i < n; i++) {
            ranks[i] = MPI_UNDEFINED;
        }
        return;
    }
    out = malloc((size_t)n * sizeof *out);
    if (out == NULL ||
        PMPI_Group_translate_ranks(g, n, ranks, H.world_group, out) != MPI_SUCCESS) {
        for (i = 0; i < n; i++) {
            ranks[i] = MPI_UNDEFINED;
        }
    } else {
        memcpy(ranks, out, (size_t)n * sizeof *out);
    }
    free(out);
    PMPI_Group_free(&g);
}

static void record_p2p(MPI_Comm comm, int source, uint64_t ns)
{
    if (source < 0) { /* MPI_ANY_SOURCE, MPI_PROC_NULL, MPI_UNDEFINED */
        return;
    }
    to_world(comm, &source, 1);
    add(VIBRA_MPI_WAIT_KIND_P2P, source, ns);
}

/* A collective that waited: the wait goes to `root` if root >= 0 (broadcast, scatter), else to
 * every other member of the communicator. */
static void record_collective(MPI_Comm comm, int root, uint64_t ns)
{
    int n, i, me = -1;
    int *ranks;
    if (root >= 0) {
        to_world(comm, &root, 1);
        add(VIBRA_MPI_WAIT_KIND_COLLECTIVE, root, ns);
        return;
    }
    if (PMPI_Comm_size(comm, &n) != MPI_SUCCESS || n <= 0) {
        return;
    }
    PMPI_Comm_rank(comm, &me);
    ranks = malloc((size_t)n * sizeof *ranks);
    if (ranks == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        ranks[i] = i;
    }
    to_world(comm, ranks, n);
    for (i = 0; i < n; i++) {
        if (i != me) {
            add(VIBRA_MPI_WAIT_KIND_COLLECTIVE, ranks[i], ns);
        }
    }
    free(ranks);
}

/* ---- receive requests: which pending requests are receives, and on which communicator ---- */

static void track(MPI_Request req, MPI_Comm comm)
{
    int i, free_slot = -1;
    for (i = 0; i < H.track_hwm; i++) {
        if (H.track[i].req == req) { /* a handle reused after a completion the hook missed */
            H.track[i].comm = comm;
            return;
        }
        if (free_slot < 0 && H.track[i].req == MPI_REQUEST_NULL) {
            free_slot = i;
        }
    }
    if (free_slot >= 0) {
        i = free_slot;
    } else if (H.track_hwm < TRACK_SLOTS) {
        i = H.track_hwm++;
    } else { /* full: forget the oldest slot (its wait is then not attributed) */
        i = H.track_next;
        H.track_next = (H.track_next + 1) % TRACK_SLOTS;
    }
    H.track[i].req = req;
    H.track[i].comm = comm;
}

/* Forgets `req`; returns 1 and its communicator if it was a tracked receive. */
static int untrack(MPI_Request req, MPI_Comm *comm)
{
    int i;
    for (i = 0; i < H.track_hwm; i++) {
        if (H.track[i].req == req) {
            *comm = H.track[i].comm;
            H.track[i].req = MPI_REQUEST_NULL;
            while (H.track_hwm > 0 && H.track[H.track_hwm - 1].req == MPI_REQUEST_NULL) {
                H.track_hwm--;
            }
            return 1;
        }
    }
    return 0;
}

/* ---- set-up and tear-down ---------------------------------------------------------------- */

static void setup(int provided)
{
    const char *path, *job;
    size_t len;
    if (getenv("VIBRA_MPI_DISABLE") != NULL && strcmp(getenv("VIBRA_MPI_DISABLE"), "1") == 0) {
        return;
    }
    if (provided == MPI_THREAD_MULTIPLE) {
        fprintf(stderr, "vibra-mpi-hook: MPI_THREAD_MULTIPLE is not supported, hook disabled\n");
        return;
    }
    PMPI_Comm_rank(MPI_COMM_WORLD, &H.rank);
    PMPI_Comm_size(MPI_COMM_WORLD, &H.size);
    PMPI_Comm_group(MPI_COMM_WORLD, &H.world_group);
    H.acc = calloc(4 * (size_t)H.size, sizeof *H.acc);
    if (H.acc == NULL) {
        return;
    }
    H.total = H.acc + 2 * H.size;
    H.pid = (uint32_t)getpid();
    job = getenv("VIBRA_MPI_JOB");
    if (job == NULL) {
        job = getenv("PMIX_NAMESPACE");
    }
    H.job = vibra_mpi_wait_job_hash(job != NULL ? job : "");
    H.spin_ns = env_u64("VIBRA_MPI_SPIN_US", 50, 1000);
    H.min_sleep_ns = env_u64("VIBRA_MPI_MIN_SLEEP_US", 10, 1000);
    H.max_sleep_ns = env_u64("VIBRA_MPI_MAX_SLEEP_US", 1000, 1000);
    if (H.min_sleep_ns == 0) {
        H.min_sleep_ns = 1000;
    }
    if (H.max_sleep_ns < H.min_sleep_ns) {
        H.max_sleep_ns = H.min_sleep_ns;
    }
    H.flush_ns = env_u64("VIBRA_MPI_FLUSH_MS", 100, 1000000);
    H.summary = getenv("VIBRA_MPI_SUMMARY") != NULL;
    path = getenv("VIBRA_MPI_SOCKET");
    if (path != NULL && (len = strlen(path)) > 0 && len < sizeof H.addr.sun_path) {
        H.sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        H.addr.sun_family = AF_UNIX;
        memcpy(H.addr.sun_path, path, len + 1);
        H.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    H.interval_start = now_ns();
    H.active = 1;
}

int MPI_Init(int *argc, char ***argv)
{
    int provided = MPI_THREAD_SINGLE;
    int rc = PMPI_Init(argc, argv);
    if (rc == MPI_SUCCESS) {
        PMPI_Query_thread(&provided);
        setup(provided);
    }
    return rc;
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    int rc = PMPI_Init_thread(argc, argv, required, provided);
    if (rc == MPI_SUCCESS) {
        setup(*provided);
    }
    return rc;
}

int MPI_Finalize(void)
{
    if (H.active) {
        int kind, peer;
        flush(now_ns());
        if (H.summary) {
            for (kind = 0; kind < 2; kind++) {
                for (peer = 0; peer < H.size; peer++) {
                    struct acc *a = &H.total[kind * H.size + peer];
                    if (a->n > 0) {
                        fprintf(stderr,
                                "vibra-mpi-hook: rank %d waited %.3f ms on rank %d (%u %s waits)\n",
                                H.rank, (double)a->ns / 1e6, peer, a->n,
                                kind == 0 ? "point-to-point" : "collective");
                    }
                }
            }
            fprintf(stderr, "vibra-mpi-hook: rank %d sent %llu records, dropped %llu\n", H.rank,
                    (unsigned long long)H.sent, (unsigned long long)H.dropped);
        }
        H.active = 0;
        if (H.sock >= 0) {
            close(H.sock);
            H.sock = -1;
        }
        PMPI_Group_free(&H.world_group);
        free(H.acc);
        H.acc = NULL;
    }
    return PMPI_Finalize();
}

/* ---- point-to-point ---------------------------------------------------------------------- */

/* Completes *req by test-and-sleep. Returns the MPI error code; *waited = 0 if the request was
 * complete at the first test, else the time until completion was seen. */
static int wait_one(MPI_Request *req, MPI_Status *st, uint64_t *waited)
{
    struct backoff b;
    int flag = 0;
    int rc = PMPI_Test(req, &flag, st);
    *waited = 0;
    if (rc != MPI_SUCCESS || flag) {
        return rc;
    }
    backoff_start(&b);
    for (;;) {
        backoff_pause(&b);
        rc = PMPI_Test(req, &flag, st);
        if (rc != MPI_SUCCESS || flag) {
            break;
        }
    }
    *waited = now_ns() - b.t0;
    if (*waited == 0) {
        *waited = 1;
    }
    return rc;
}

int MPI_Recv(void *buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm,
             MPI_Status *status)
{
    MPI_Status s;
    MPI_Request req;
    uint64_t waited;
    int flag = 0, rc;
    if (!H.active || source == MPI_PROC_NULL) {
        return PMPI_Recv(buf, count, type, source, tag, comm, status);
    }
    rc = PMPI_Iprobe(source, tag, comm, &flag, &s);
    if (rc != MPI_SUCCESS || flag) { /* already there: the plain receive does not wait */
        maybe_flush();
        return rc != MPI_SUCCESS ? rc : PMPI_Recv(buf, count, type, source, tag, comm, status);
    }
    rc = PMPI_Irecv(buf, count, type, source, tag, comm, &req);
    if (rc != MPI_SUCCESS) {
        return rc;
    }
    rc = wait_one(&req, &s, &waited);
    if (rc == MPI_SUCCESS && waited > 0) {
        record_p2p(comm, s.MPI_SOURCE, waited);
    }
    if (status != MPI_STATUS_IGNORE) {
        *status = s;
    }
    maybe_flush();
    return rc;
}

int MPI_Irecv(void *buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm,
              MPI_Request *req)
{
    int rc = PMPI_Irecv(buf, count, type, source, tag, comm, req);
    if (H.active && rc == MPI_SUCCESS && source != MPI_PROC_NULL) {
        track(*req, comm);
    }
    return rc;
}

/* A send request may reuse the handle of a receive completed where the hook did not see it
 * (MPI_Testall, ...): forget it so that its wait is never taken for a receive. */
int MPI_Isend(const void *buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm,
              MPI_Request *req)
{
    MPI_Comm c;
    int rc = PMPI_Isend(buf, count, type, dest, tag, comm, req);
    if (H.active && rc == MPI_SUCCESS) {
        untrack(*req, &c);
    }
    return rc;
}

int MPI_Test(MPI_Request *req, int *flag, MPI_Status *status)
{
    MPI_Request orig = *req;
    MPI_Comm c;
    int rc = PMPI_Test(req, flag, status);
    if (H.active && rc == MPI_SUCCESS && *flag && orig != MPI_REQUEST_NULL) {
        untrack(orig, &c);
    }
    return rc;
}

int MPI_Request_free(MPI_Request *req)
{
    MPI_Comm c;
    if (H.active && *req != MPI_REQUEST_NULL) {
        untrack(*req, &c);
    }
    return PMPI_Request_free(req);
}

int MPI_Wait(MPI_Request *req, MPI_Status *status)
{
    MPI_Request orig = *req;
    MPI_Status s;
    MPI_Comm comm;
    uint64_t waited;
    int rc;
    if (!H.active || orig == MPI_REQUEST_NULL) {
        return PMPI_Wait(req, status);
    }
    rc = wait_one(req, &s, &waited);
    if (untrack(orig, &comm) && rc == MPI_SUCCESS && waited > 0) {
        record_p2p(comm, s.MPI_SOURCE, waited);
    }
    if (status != MPI_STATUS_IGNORE) {
        *status = s;
    }
    maybe_flush();
    return rc;
}

int MPI_Waitall(int count, MPI_Request reqs[], MPI_Status statuses[])
{
    MPI_Request orig_stack[STACK_REQS];
    int idx_stack[STACK_REQS];
    MPI_Status st_stack[STACK_REQS];
    MPI_Request *orig = orig_stack;
    int *idx = idx_stack;
    MPI_Status *st = st_stack;
    struct backoff b;
    int rc = MPI_SUCCESS, i, k, outcount, first = 1;
    if (!H.active || count <= 0) {
        return PMPI_Waitall(count, reqs, statuses);
    }
    if (count > STACK_REQS) {
        orig = malloc((size_t)count * sizeof *orig);
        idx = malloc((size_t)count * sizeof *idx);
        st = malloc((size_t)count * sizeof *st);
        if (orig == NULL || idx == NULL || st == NULL) {
            free(orig);
            free(idx);
            free(st);
            return PMPI_Waitall(count, reqs, statuses);
        }
    }
    memcpy(orig, reqs, (size_t)count * sizeof *orig);
    backoff_start(&b);
    for (;;) {
        rc = PMPI_Testsome(count, reqs, &outcount, idx, st);
        if (rc != MPI_SUCCESS || outcount == MPI_UNDEFINED) { /* error, or all complete */
            break;
        }
        for (k = 0; k < outcount; k++) {
            MPI_Comm comm;
            i = idx[k];
            if (untrack(orig[i], &comm) && !first) {
                uint64_t w = now_ns() - b.t0;
                record_p2p(comm, st[k].MPI_SOURCE, w > 0 ? w : 1);
            }
            if (statuses != MPI_STATUSES_IGNORE) {
                statuses[i] = st[k];
            }
        }
        first = 0;
        if (outcount == 0) {
            backoff_pause(&b);
        }
    }
    /* Requests that were already inactive (null or inactive persistent) report an empty
     * status: MPI_Testsome never lists them, so their status slots keep the caller's bytes,
     * which MPI leaves undefined for null requests anyway. */
    if (orig != orig_stack) {
        free(orig);
        free(idx);
        free(st);
    }
    maybe_flush();
    return rc;
}

int MPI_Sendrecv(const void *sendbuf, int sendcount, MPI_Datatype sendtype, int dest, int sendtag,
                 void *recvbuf, int recvcount, MPI_Datatype recvtype, int source, int recvtag,
                 MPI_Comm comm, MPI_Status *status)
{
    MPI_Request reqs[2];
    MPI_Status st[2];
    struct backoff b;
    int rc, flag = 0, recv_done = 0, send_done = 0, pass;
    uint64_t waited = 0;
    if (!H.active) {
        return PMPI_Sendrecv(sendbuf, sendcount, sendtype, dest, sendtag, recvbuf, recvcount,
                             recvtype, source, recvtag, comm, status);
    }
    rc = PMPI_Irecv(recvbuf, recvcount, recvtype, source, recvtag, comm, &reqs[0]);
    if (rc != MPI_SUCCESS) {
        return rc;
    }
    rc = PMPI_Isend(sendbuf, sendcount, sendtype, dest, sendtag, comm, &reqs[1]);
    if (rc != MPI_SUCCESS) {
        PMPI_Cancel(&reqs[0]);
        PMPI_Wait(&reqs[0], MPI_STATUS_IGNORE);
        return rc;
    }
    backoff_start(&b);
    for (pass = 0;; pass++) {
        if (!recv_done) {
            rc = PMPI_Test(&reqs[0], &flag, &st[0]);
            if (rc != MPI_SUCCESS) {
                break;
            }
            if (flag) {
                recv_done = 1;
                if (pass > 0) { /* not there at the first test: the call waited for it */
                    waited = now_ns() - b.t0;
                    waited = waited > 0 ? waited : 1;
                }
            }
        }
        if (!send_done) {
            rc = PMPI_Test(&reqs[1], &flag, &st[1]);
            if (rc != MPI_SUCCESS) {
                break;
            }
            send_done = flag;
        }
        if (recv_done && send_done) {
            break;
        }
        backoff_pause(&b);
    }
    if (rc != MPI_SUCCESS) {
        return rc;
    }
    if (waited > 0) {
        record_p2p(comm, st[0].MPI_SOURCE, waited);
    }
    if (status != MPI_STATUS_IGNORE) {
        *status = st[0];
    }
    maybe_flush();
    return rc;
}

/* ---- collectives: the non-blocking form, then test-and-sleep ------------------------------ */

static int coll_wait(int rc, MPI_Request *req, MPI_Comm comm, int root)
{
    uint64_t waited;
    if (rc != MPI_SUCCESS) {
        return rc;
    }
    rc = wait_one(req, MPI_STATUS_IGNORE, &waited);
    if (rc == MPI_SUCCESS && waited > 0) {
        record_collective(comm, root, waited);
    }
    maybe_flush();
    return rc;
}

int MPI_Barrier(MPI_Comm comm)
{
    MPI_Request r;
    if (!H.active) {
        return PMPI_Barrier(comm);
    }
    return coll_wait(PMPI_Ibarrier(comm, &r), &r, comm, -1);
}

/* Broadcast and scatter: a non-root waits on the root; the root on nobody. */
static int root_or_self(MPI_Comm comm, int root)
{
    int me = -1, inter = 0;
    PMPI_Comm_test_inter(comm, &inter);
    if (inter) {
        return root >= 0 ? root : -2; /* MPI_ROOT / MPI_PROC_NULL in the root group: nobody */
    }
    PMPI_Comm_rank(comm, &me);
    return me == root ? -2 : root;
}

static int coll_wait_rooted(int rc, MPI_Request *req, MPI_Comm comm, int root)
{
    int who = root_or_self(comm, root);
    uint64_t waited;
    if (rc != MPI_SUCCESS) {
        return rc;
    }
    rc = wait_one(req, MPI_STATUS_IGNORE, &waited);
    if (rc == MPI_SUCCESS && waited > 0 && who >= 0) {
        record_collective(comm, who, waited);
    }
    maybe_flush();
    return rc;
}

int MPI_Bcast(void *buf, int count, MPI_Datatype type, int root, MPI_Comm comm)
{
    MPI_Request r;
    if (!H.active) {
        return PMPI_Bcast(buf, count, type, root, comm);
    }
    return coll_wait_rooted(PMPI_Ibcast(buf, count, type, root, comm, &r), &r, comm, root);
}

int MPI_Scatter(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                int recvcount, MPI_Datatype recvtype, int root, MPI_Comm comm)
{
    MPI_Request r;
    if (!H.active) {
        return PMPI_Scatter(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, root,
                            comm);
    }
    return coll_wait_rooted(PMPI_Iscatter(sendbuf, sendcount, sendtype, recvbuf, recvcount,
                                          recvtype, root, comm, &r),
                            &r, comm, root);
}

int MPI_Reduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype type, MPI_Op op,
               int root, MPI_Comm comm)
{
    MPI_Request r;
    if (!H.active) {
        return PMPI_Reduce(sendbuf, recvbuf, count, type, op, root, comm);
    }
    return coll_wait(PMPI_Ireduce(sendbuf, recvbuf, count, type, op, root, comm, &r), &r, comm,
                     -1);
}

int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype type, MPI_Op op,
                  MPI_Comm comm)
{
    MPI_Request r;
    if (!H.active) {
        return PMPI_Allreduce(sendbuf, recvbuf, count, type, op, comm);
    }
    return coll_wait(PMPI_Iallreduce(sendbuf, recvbuf, count, type, op, comm, &r), &r, comm, -1);
}

int MPI_Gather(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
               int recvcount, MPI_Datatype recvtype, int root, MPI_Comm comm)
{
    MPI_Request r;
    if (!H.active) {
        return PMPI_Gather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, root,
                           comm);
    }
    return coll_wait(PMPI_Igather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype,
                                  root, comm, &r),
                     &r, comm, -1);
}

int MPI_Allgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                  int recvcount, MPI_Datatype recvtype, MPI_Comm comm)
{
    MPI_Request r;
    if (!H.active) {
        return PMPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
    }
    return coll_wait(PMPI_Iallgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype,
                                     comm, &r),
                     &r, comm, -1);
}

int MPI_Alltoall(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                 int recvcount, MPI_Datatype recvtype, MPI_Comm comm)
{
    MPI_Request r;
    if (!H.active) {
        return PMPI_Alltoall(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
    }
    return coll_wait(PMPI_Ialltoall(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype,
                                    comm, &r),
                     &r, comm, -1);
}
