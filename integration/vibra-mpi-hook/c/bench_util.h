/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Shared by the hook's C benchmarks: a clock and mean / spread / median of samples. */
#ifndef VIBRA_MPI_BENCH_UTIL_H
#define VIBRA_MPI_BENCH_UTIL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double bench_now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct bench_stats {
    double mean, sd, median, max;
};

static struct bench_stats bench_summarise(const double *v, int n)
{
    struct bench_stats s = {0, 0, 0, 0};
    double *c = malloc((size_t)n * sizeof *c);
    int i;
    if (c == NULL || n <= 0) {
        free(c);
        return s;
    }
    for (i = 0; i < n; i++) {
        s.mean += v[i] / n;
    }
    for (i = 0; i < n; i++) {
        s.sd += (v[i] - s.mean) * (v[i] - s.mean) / (n > 1 ? n - 1 : 1);
    }
    s.sd = sqrt(s.sd);
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, bench_cmp);
    s.median = c[n / 2];
    s.max = c[n - 1];
    free(c);
    return s;
}

#endif
