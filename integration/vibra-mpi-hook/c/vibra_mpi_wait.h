/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vibra_mpi_wait.h: the wait record of the Vibra PMPI hook, version 1.
 *
 * One record = one Unix datagram of exactly VIBRA_MPI_WAIT_LEN (64) bytes saying "during
 * [start_ns, end_ns), rank `rank` of job `job` (process `pid`) waited `wait_ns` nanoseconds in
 * `waits` blocking calls on rank `peer`". All integers are little-endian, whatever the host.
 *
 *   offset size field
 *        0    4 magic      0x57504D56 (the bytes "VMPW")
 *        4    2 version    1; a reader rejects any other value
 *        6    2 kind       0 = point-to-point (receive, wait, sendrecv: the peer is the sender
 *                          of the awaited message); 1 = collective (the wait is attributed to
 *                          every other participant, or to the root for a broadcast/scatter)
 *        8    8 job        FNV-1a 64 of the job id (VIBRA_MPI_JOB, else PMIX_NAMESPACE, else "")
 *       16    4 pid        waiting process
 *       20    4 rank       its rank in MPI_COMM_WORLD
 *       24    4 world_size size of MPI_COMM_WORLD
 *       28    4 peer       rank in MPI_COMM_WORLD waited on (< world_size, != rank)
 *       32    4 waits      number of blocking calls that waited (>= 1)
 *       36    4 reserved   0
 *       40    8 wait_ns    total time those calls spent waiting
 *       48    8 start_ns   interval start, CLOCK_MONOTONIC of the host
 *       56    8 end_ns     interval end (>= start_ns)
 *
 * The Rust reader `vibra_mpi_hook::WaitRecord` mirrors this layout; a test decodes bytes
 * produced by vibra_mpi_wait_encode below.
 */
#ifndef VIBRA_MPI_WAIT_H
#define VIBRA_MPI_WAIT_H

#include <stdint.h>

#define VIBRA_MPI_WAIT_MAGIC 0x57504D56u
#define VIBRA_MPI_WAIT_VERSION 1u
#define VIBRA_MPI_WAIT_LEN 64
#define VIBRA_MPI_WAIT_KIND_P2P 0u
#define VIBRA_MPI_WAIT_KIND_COLLECTIVE 1u

struct vibra_mpi_wait {
    uint16_t kind;
    uint64_t job;
    uint32_t pid;
    uint32_t rank;
    uint32_t world_size;
    uint32_t peer;
    uint32_t waits;
    uint64_t wait_ns;
    uint64_t start_ns;
    uint64_t end_ns;
};

static inline void vibra_mpi_wait_put(uint8_t *p, uint64_t v, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

/* Writes the 64-byte wire form of `r` (magic, version and reserved filled in). */
static inline void vibra_mpi_wait_encode(const struct vibra_mpi_wait *r,
                                         uint8_t out[VIBRA_MPI_WAIT_LEN])
{
    vibra_mpi_wait_put(out + 0, VIBRA_MPI_WAIT_MAGIC, 4);
    vibra_mpi_wait_put(out + 4, VIBRA_MPI_WAIT_VERSION, 2);
    vibra_mpi_wait_put(out + 6, r->kind, 2);
    vibra_mpi_wait_put(out + 8, r->job, 8);
    vibra_mpi_wait_put(out + 16, r->pid, 4);
    vibra_mpi_wait_put(out + 20, r->rank, 4);
    vibra_mpi_wait_put(out + 24, r->world_size, 4);
    vibra_mpi_wait_put(out + 28, r->peer, 4);
    vibra_mpi_wait_put(out + 32, r->waits, 4);
    vibra_mpi_wait_put(out + 36, 0, 4);
    vibra_mpi_wait_put(out + 40, r->wait_ns, 8);
    vibra_mpi_wait_put(out + 48, r->start_ns, 8);
    vibra_mpi_wait_put(out + 56, r->end_ns, 8);
}

/* FNV-1a 64 of a NUL-terminated string: the record's `job` field. */
static inline uint64_t vibra_mpi_wait_job_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    while (*s) {
        h ^= (uint8_t)*s++;
        h *= 0x100000001b3ull;
    }
    return h;
}

#endif /* VIBRA_MPI_WAIT_H */
