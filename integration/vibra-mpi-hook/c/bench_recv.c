/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * bench_recv: the hook's cost on a blocking receive that does not wait.
 *
 *   mpirun -np 2 -x LD_PRELOAD=libvibra_mpi_hook.so ./bench_recv [rounds] [msgs]
 *
 * Each round, rank 0 sends `msgs` 1 KB messages and both ranks pass a barrier, so every
 * message has arrived before rank 1 receives them with blocking receives: through MPI_Recv
 * (the hook, when preloaded) in even rounds and PMPI_Recv (the library's own, never hooked)
 * in odd rounds, in the same process. Rank 1 prints, per mode, the per-call time (thread CPU
 * time, so preemption by other load on a shared machine does not count) as mean, standard
 * deviation and median over the rounds, and the difference of the means: the hook's overhead.
 */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

#define MSG 1024

int main(int argc, char **argv)
{
    int rank, rounds, msgs, r, m;
    char *buf;
    double *t[2];
    MPI_Request *reqs;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    rounds = argc > 1 ? atoi(argv[1]) : 200;
    msgs = argc > 2 ? atoi(argv[2]) : 64;
    if (rounds < 2 || msgs < 1) {
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    buf = calloc((size_t)msgs, MSG);
    reqs = malloc((size_t)msgs * sizeof *reqs);
    t[0] = malloc((size_t)rounds * sizeof(double));
    t[1] = malloc((size_t)rounds * sizeof(double));
    for (r = 0; r < 2 * rounds + 2; r++) { /* the first two rounds warm up */
        int hooked = r % 2 == 0;
        if (rank == 0) {
            for (m = 0; m < msgs; m++) {
                PMPI_Isend(buf + (size_t)m * MSG, MSG, MPI_CHAR, 1, m, MPI_COMM_WORLD, &reqs[m]);
            }
            PMPI_Waitall(msgs, reqs, MPI_STATUSES_IGNORE);
            PMPI_Barrier(MPI_COMM_WORLD);
        } else if (rank == 1) {
            double t0;
            int flag = 0;
            PMPI_Barrier(MPI_COMM_WORLD);
            /* until the last message is visible, so no receive below waits */
            while (!flag) {
                PMPI_Iprobe(0, msgs - 1, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
            }
            t0 = bench_now_ns(CLOCK_THREAD_CPUTIME_ID);
            for (m = 0; m < msgs; m++) {
                if (hooked) {
                    MPI_Recv(buf + (size_t)m * MSG, MSG, MPI_CHAR, 0, m, MPI_COMM_WORLD,
                             MPI_STATUS_IGNORE);
                } else {
                    PMPI_Recv(buf + (size_t)m * MSG, MSG, MPI_CHAR, 0, m, MPI_COMM_WORLD,
                              MPI_STATUS_IGNORE);
                }
            }
            if (r >= 2) {
                t[hooked ? 1 : 0][(r - 2) / 2] =
                    (bench_now_ns(CLOCK_THREAD_CPUTIME_ID) - t0) / msgs;
            }
        } else {
            PMPI_Barrier(MPI_COMM_WORLD);
        }
    }
    if (rank == 1) {
        struct bench_stats b = bench_summarise(t[0], rounds), h = bench_summarise(t[1], rounds);
        printf("bench_recv: %d rounds x %d received 1 KB messages, ns per call (thread CPU)\n",
               rounds, msgs);
        printf("PMPI_Recv mean %.1f sd %.1f median %.1f\n", b.mean, b.sd, b.median);
        printf("MPI_Recv  mean %.1f sd %.1f median %.1f\n", h.mean, h.sd, h.median);
        printf("overhead_ns mean %.1f median %.1f\n", h.mean - b.mean, h.median - b.median);
    }
    free(buf);
    free(reqs);
    free(t[0]);
    free(t[1]);
    MPI_Finalize();
    return 0;
}
