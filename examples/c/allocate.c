/*
 * allocate: share a resource pool (bandwidth, memory) among virtual machines in proportion to
 * their demand, print the change plan that gets there safely, then what happens when one
 * machine's server fails.
 *
 *   allocate TOTAL FLOOR [FAILED REPLICATION] < vms.txt
 *
 * Each line of vms.txt is "<current allocation> <demand>" for one VM (VM 0 first). The target
 * is floor + (TOTAL - n*floor) * demand / sum(demand); the plan lists every decrease before any
 * increase, so applying it in order never over-commits the pool. With FAILED and REPLICATION,
 * VM FAILED's target allocation is handed to the next REPLICATION available VMs.
 *
 * Build: cc -std=c99 allocate.c $(pkg-config --cflags --libs vibra) -o allocate
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <vibra.h>

static void fail(const char *what, vibra_status status) {
    char message[256];
    vibra_last_error(message, sizeof message);
    fprintf(stderr, "allocate: %s: %s (%s)\n", what, vibra_status_str(status), message);
    exit(1);
}

int main(int argc, char **argv) {
    double total, floor_share, current_value, demand_value;
    double *current = NULL, *demand = NULL, *target, *after;
    bool *available;
    size_t n = 0, cap = 0, i, steps = 0;
    vibra_change *plan;
    vibra_status status;

    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: allocate TOTAL FLOOR [FAILED REPLICATION] < vms.txt\n");
        return 2;
    }
    total = strtod(argv[1], NULL);
    floor_share = strtod(argv[2], NULL);
    while (scanf("%lf %lf", &current_value, &demand_value) == 2) {
        if (n == cap) {
            double *c, *d;
            cap = cap ? 2 * cap : 8;
            c = realloc(current, cap * sizeof *current);
            d = realloc(demand, cap * sizeof *demand);
            if (c == NULL || d == NULL) {
                fprintf(stderr, "allocate: out of memory\n");
                return 1;
            }
            current = c;
            demand = d;
        }
        current[n] = current_value;
        demand[n] = demand_value;
        n++;
    }

    target = calloc(n ? n : 1, sizeof *target);
    if (target == NULL) {
        return 1;
    }
    status = vibra_allocate_proportional(demand, n, total, floor_share, target);
    if (status != VIBRA_OK) {
        fail("vibra_allocate_proportional", status);
    }
    for (i = 0; i < n; i++) {
        printf("vm %zu: demand %.3f, allocation %.3f -> %.3f\n", i, demand[i], current[i],
               target[i]);
    }

    /* Ask for the plan's length first (a NULL buffer of capacity 0), then fetch it. */
    status = vibra_allocation_plan(current, target, n, NULL, 0, &steps);
    if (status != VIBRA_OK && status != VIBRA_BUFFER_TOO_SMALL) {
        fail("vibra_allocation_plan", status);
    }
    plan = calloc(steps ? steps : 1, sizeof *plan);
    if (plan == NULL) {
        return 1;
    }
    status = vibra_allocation_plan(current, target, n, plan, steps, &steps);
    if (status != VIBRA_OK) {
        fail("vibra_allocation_plan", status);
    }
    printf("plan: %zu steps, decreases first\n", steps);
    for (i = 0; i < steps; i++) {
        printf("  %zu. vm %u: %.3f -> %.3f\n", i + 1, (unsigned)plan[i].vm, plan[i].from,
               plan[i].to);
    }

    if (argc == 5) {
        uint32_t failed = (uint32_t)strtoul(argv[3], NULL, 10);
        uint32_t replication = (uint32_t)strtoul(argv[4], NULL, 10);
        after = calloc(n ? n : 1, sizeof *after);
        available = calloc(n ? n : 1, sizeof *available);
        if (after == NULL || available == NULL) {
            return 1;
        }
        for (i = 0; i < n; i++) {
            available[i] = i != failed;
        }
        status = vibra_failover_compensation(target, available, n, failed, replication, after);
        if (status != VIBRA_OK) {
            fail("vibra_failover_compensation", status);
        }
        printf("vm %u fails (replication %u):\n", (unsigned)failed, (unsigned)replication);
        for (i = 0; i < n; i++) {
            printf("  vm %zu: %.3f -> %.3f\n", i, target[i], after[i]);
        }
        free(after);
        free(available);
    }
    free(plan);
    free(target);
    free(current);
    free(demand);
    return 0;
}
