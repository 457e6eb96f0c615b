/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * bench_wake: what test-and-sleep costs a receive that waits: added wake-up latency and the
 * CPU the waiting rank burns, against the library's own (busy-polling) receive.
 *
 *   mpirun -np 2 -x LD_PRELOAD=libvibra_mpi_hook.so ./bench_wake [rounds] [delay_us ...]
 *
 * For each delay D (default 100, 1000, 10000 us) and each round, both ranks pass a barrier,
 * rank 0 sleeps D, stamps CLOCK_MONOTONIC and sends the stamp in an 8-byte message; rank 1
 * receives it with MPI_Recv (the hook) in even rounds and PMPI_Recv (busy-polling) in odd ones
 * and records (arrival time - stamp) and its own thread CPU time during the receive. Rank 1
 * prints, per delay and mode, latency mean / sd / median / max in us and CPU per wait in % of
 * the wait. CLOCK_MONOTONIC is one clock for all processes of a host.
 */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"

int main(int argc, char **argv)
{
    int rank, rounds, nd, d, r;
    long dflt[3] = {100, 1000, 10000};
    long *delays = dflt;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    rounds = argc > 1 ? atoi(argv[1]) : 100;
    nd = 3;
    if (argc > 2) {
        nd = argc - 2;
        delays = malloc((size_t)nd * sizeof *delays);
        for (d = 0; d < nd; d++) {
            delays[d] = atol(argv[d + 2]);
        }
    }
    if (rounds < 2) {
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (rank == 1) {
        printf("bench_wake: %d rounds per mode and delay; latency in us, CPU in %% of the wait\n",
               rounds);
    }
    for (d = 0; d < nd; d++) {
        double *lat[2], *cpu[2];
        int k;
        for (k = 0; k < 2; k++) {
            lat[k] = malloc((size_t)rounds * sizeof(double));
            cpu[k] = malloc((size_t)rounds * sizeof(double));
        }
        for (r = 0; r < 2 * rounds; r++) {
            int hooked = r % 2 == 0;
            double stamp = 0;
            PMPI_Barrier(MPI_COMM_WORLD);
            if (rank == 0) {
                struct timespec ts;
                ts.tv_sec = delays[d] / 1000000;
                ts.tv_nsec = (delays[d] % 1000000) * 1000;
                nanosleep(&ts, NULL);
                stamp = bench_now_ns(CLOCK_MONOTONIC);
                PMPI_Send(&stamp, 1, MPI_DOUBLE, 1, 0, MPI_COMM_WORLD);
            } else if (rank == 1) {
                double c0 = bench_now_ns(CLOCK_THREAD_CPUTIME_ID), w0 = bench_now_ns(CLOCK_MONOTONIC);
                double arrived, c1;
                if (hooked) {
                    MPI_Recv(&stamp, 1, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                } else {
                    PMPI_Recv(&stamp, 1, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                }
                arrived = bench_now_ns(CLOCK_MONOTONIC);
                c1 = bench_now_ns(CLOCK_THREAD_CPUTIME_ID);
                lat[hooked][r / 2] = (arrived - stamp) / 1e3;
                cpu[hooked][r / 2] = 100.0 * (c1 - c0) / (arrived - w0);
            }
        }
        if (rank == 1) {
            for (k = 0; k < 2; k++) {
                struct bench_stats l = bench_summarise(lat[k], rounds);
                struct bench_stats c = bench_summarise(cpu[k], rounds);
                printf("delay_us %ld %s latency_us mean %.1f sd %.1f median %.1f max %.1f "
                       "cpu_pct mean %.1f sd %.1f\n",
                       delays[d], k ? "MPI_Recv(hook)" : "PMPI_Recv     ", l.mean, l.sd,
                       l.median, l.max, c.mean, c.sd);
            }
        }
        for (k = 0; k < 2; k++) {
            free(lat[k]);
            free(cpu[k]);
        }
    }
    if (delays != dflt) {
        free(delays);
    }
    MPI_Finalize();
    return 0;
}
