/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * patterns: a bulk-synchronous MPI program modelled on the Virtuoso `patterns` program the
 * dissertation evaluates DPS with (section 5.5.1), with its 1/i load imbalance.
 *
 * Every iteration, node i (= MPI rank + 1) does 1/i of the work: `elements / i` elements of
 * `madds` multiply-adds each, swept over a `buffer`-byte array of doubles (the dissertation:
 * 10^6 multiply-adds and 1 MB per element); then it exchanges one `size`-byte message (1 KB)
 * with each neighbour: the ranks beside it (linear, a 1-D mesh) or every other rank (all).
 * Rank 0 prints the response time (slowest rank, from a common start) and one line per rank
 * with its compute time, its wait time (inside the MPI exchange calls), its CPU time (utime +
 * stime from /proc/self/stat) and the part of it spent inside the exchange calls (wait_cpu_s,
 * CLOCK_PROCESS_CPUTIME_ID): a busy-polling rank burns CPU there, a yielding one does not.
 *
 *   mpirun -np 4 ./patterns [-t linear|all] [-n iters] [-e elements] [-m madds] [-b bytes]
 *                           [-s msg_bytes] [-c waitall|sendrecv|recv] [-B]
 *
 * -c picks the MPI calls of the exchange (so each receive path of the PMPI hook is exercised):
 * waitall = MPI_Irecv + MPI_Isend to every neighbour, then MPI_Waitall; sendrecv = one
 * MPI_Sendrecv per neighbour in a deadlock-free order; recv = MPI_Isend to every neighbour,
 * blocking MPI_Recv from each, MPI_Waitall on the sends. -B adds an MPI_Barrier per iteration.
 */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum comm_mode { WAITALL, SENDRECV, RECV };

struct opts {
    int all;
    int iters;
    double elements;
    double madds;
    long buffer;
    int size;
    enum comm_mode mode;
    int barrier;
};

static double clock_s(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* utime + stime of this process, seconds, from /proc/self/stat (fields 14 and 15). */
static double proc_cpu(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n;
    char *p;
    unsigned long long ut = 0, st = 0;
    if (f == NULL) {
        return -1.0;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may contain spaces and parentheses */
    /* fields 3 (state) .. 13 skipped, then 14 utime and 15 stime, in clock ticks */
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                            &st) != 2) {
        return -1.0;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void usage(void)
{
    fprintf(stderr, "usage: patterns [-t linear|all] [-n iters] [-e elements] [-m madds] "
                    "[-b buffer_bytes] [-s msg_bytes] [-c waitall|sendrecv|recv] [-B]\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
    int c;
    o->all = 0;
    o->iters = 10;
    o->elements = 100;
    o->madds = 1e6;
    o->buffer = 1 << 20;
    o->size = 1024;
    o->mode = WAITALL;
    o->barrier = 0;
    while ((c = getopt(argc, argv, "t:n:e:m:b:s:c:B")) != -1) {
        switch (c) {
        case 't':
            if (strcmp(optarg, "linear") == 0) {
                o->all = 0;
            } else if (strcmp(optarg, "all") == 0) {
                o->all = 1;
            } else {
                return -1;
            }
            break;
        case 'n':
            o->iters = atoi(optarg);
            break;
        case 'e':
            o->elements = atof(optarg);
            break;
        case 'm':
            o->madds = atof(optarg);
            break;
        case 'b':
            o->buffer = atol(optarg);
            break;
        case 's':
            o->size = atoi(optarg);
            break;
        case 'c':
            if (strcmp(optarg, "waitall") == 0) {
                o->mode = WAITALL;
            } else if (strcmp(optarg, "sendrecv") == 0) {
                o->mode = SENDRECV;
            } else if (strcmp(optarg, "recv") == 0) {
                o->mode = RECV;
            } else {
                return -1;
            }
            break;
        case 'B':
            o->barrier = 1;
            break;
        default:
            return -1;
        }
    }
    if (o->iters < 1 || o->elements < 0 || o->madds < 0 || o->buffer < 8 || o->size < 1) {
        return -1;
    }
    return 0;
}

/* `total` multiply-adds, sweeping the buffer again and again: a[k] = a[k] * x + y. */
static void compute(double *a, long n, long long total)
{
    const double x = 0.999999, y = 1e-6;
    while (total > 0) {
        long len = total < (long long)n ? (long)total : n;
        long k;
        for (k = 0; k < len; k++) {
            a[k] = a[k] * x + y;
        }
        total -= len;
    }
}

int main(int argc, char **argv)
{
    struct opts o;
    int rank, size, nb = 0, i, it, *peers;
    double *a, t_start, t_end, t_compute = 0, t_wait = 0, cpu_wait = 0, cpu0, check = 0;
    long long work;
    char *sendbuf, *recvbufs;
    MPI_Request *reqs;
    long n;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (parse(argc, argv, &o) != 0) {
        if (rank == 0) {
            usage();
        }
        MPI_Finalize();
        return 2;
    }

    peers = malloc((size_t)size * sizeof *peers);
    for (i = 0; i < size; i++) {
        if (i != rank && (o.all || i == rank - 1 || i == rank + 1)) {
            peers[nb++] = i;
        }
    }
    n = o.buffer / (long)sizeof(double);
    a = malloc((size_t)n * sizeof *a);
    sendbuf = malloc((size_t)o.size);
    recvbufs = malloc((size_t)o.size * (size_t)(nb > 0 ? nb : 1));
    reqs = malloc(2 * (size_t)(nb > 0 ? nb : 1) * sizeof *reqs);
    if (peers == NULL || a == NULL || sendbuf == NULL || recvbufs == NULL || reqs == NULL) {
        fprintf(stderr, "patterns: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (i = 0; i < n; i++) {
        a[i] = (double)(i % 1000) * 1e-3;
    }
    memset(sendbuf, rank & 0xff, (size_t)o.size);
    work = (long long)(o.elements * o.madds / (double)(rank + 1)); /* node i = rank + 1 does 1/i */

    MPI_Barrier(MPI_COMM_WORLD);
    cpu0 = proc_cpu();
    t_start = now();
    for (it = 0; it < o.iters; it++) {
        double t0 = now(), t1, c1;
        compute(a, n, work);
        t1 = now();
        c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        t_compute += t1 - t0;
        sendbuf[0] = (char)it;
        if (o.mode == WAITALL) {
            for (i = 0; i < nb; i++) {
                MPI_Irecv(recvbufs + (size_t)i * (size_t)o.size, o.size, MPI_CHAR, peers[i], it,
                          MPI_COMM_WORLD, &reqs[i]);
            }
            for (i = 0; i < nb; i++) {
                MPI_Isend(sendbuf, o.size, MPI_CHAR, peers[i], it, MPI_COMM_WORLD, &reqs[nb + i]);
            }
            MPI_Waitall(2 * nb, reqs, MPI_STATUSES_IGNORE);
        } else if (o.mode == SENDRECV) {
            /* Shift by d = 1 .. size-1 (all) or d = 1 right then left (linear): at each step
             * every rank sends to rank + d and receives from rank - d, so no cycle waits. */
            int d, steps = o.all ? size - 1 : 2;
            for (d = 0; d < steps; d++) {
                int to, from;
                if (o.all) {
                    to = (rank + d + 1) % size;
                    from = (rank - d - 1 + size) % size;
                } else {
                    to = d == 0 ? rank + 1 : rank - 1;
                    from = d == 0 ? rank - 1 : rank + 1;
                    to = to < 0 || to >= size ? MPI_PROC_NULL : to;
                    from = from < 0 || from >= size ? MPI_PROC_NULL : from;
                }
                MPI_Sendrecv(sendbuf, o.size, MPI_CHAR, to, it, recvbufs, o.size, MPI_CHAR, from,
                             it, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            }
        } else {
            for (i = 0; i < nb; i++) {
                MPI_Isend(sendbuf, o.size, MPI_CHAR, peers[i], it, MPI_COMM_WORLD, &reqs[i]);
            }
            for (i = 0; i < nb; i++) {
                MPI_Recv(recvbufs + (size_t)i * (size_t)o.size, o.size, MPI_CHAR, peers[i], it,
                         MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            }
            MPI_Waitall(nb, reqs, MPI_STATUSES_IGNORE);
        }
        if (o.barrier) {
            MPI_Barrier(MPI_COMM_WORLD);
        }
        t_wait += now() - t1;
        cpu_wait += clock_s(CLOCK_PROCESS_CPUTIME_ID) - c1;
    }
    t_end = now();
    {
        double mine[5], *all = NULL, response = 0, elapsed = t_end - t_start;
        mine[0] = t_compute;
        mine[1] = t_wait;
        mine[2] = proc_cpu() - cpu0;
        for (i = 0; i < (n < 1000 ? n : 1000); i++) {
            check += a[i];
        }
        mine[3] = check;
        mine[4] = cpu_wait;
        if (rank == 0) {
            all = malloc(5 * (size_t)size * sizeof *all);
        }
        MPI_Reduce(&elapsed, &response, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        MPI_Gather(mine, 5, MPI_DOUBLE, all, 5, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        if (rank == 0) {
            printf("patterns: %d ranks, %s, %d iterations, %g elements x %g multiply-adds / i, "
                   "%d-byte messages, %s%s\n",
                   size, o.all ? "all-to-all" : "linear", o.iters, o.elements, o.madds, o.size,
                   o.mode == WAITALL ? "waitall" : o.mode == SENDRECV ? "sendrecv" : "recv",
                   o.barrier ? " + barrier" : "");
            printf("response_time_s %.6f\n", response);
            for (i = 0; i < size; i++) {
                printf("rank %d compute_s %.6f wait_s %.6f cpu_s %.2f wait_cpu_s %.6f "
                       "check %.6g\n",
                       i, all[5 * i], all[5 * i + 1], all[5 * i + 2], all[5 * i + 4],
                       all[5 * i + 3]);
            }
            free(all);
        }
    }
    free(peers);
    free(a);
    free(sendbuf);
    free(recvbufs);
    free(reqs);
    MPI_Finalize();
    return 0;
}
