/*
 * share_exchange: CPU shares flowing between the virtual machines of one distributed program,
 * with both exchanges of libvibra (dissertation ch. 5, SPEC section 6).
 *
 *   share_exchange [ROUNDS]
 *
 * Four VMs form a pipeline 0 -> 1 -> 2 -> 3 and start with a quarter of the program's share
 * each; the upstream end is busy and the downstream end idle. Fully distributed (eq. 5.1): each
 * VM offers part of its excess to its upstream neighbour every round. Bank-assisted (eq. 5.2):
 * each VM deposits its excess, VMs short of share report a shortage, and the bank grants its
 * whole balance. Both print every round's shares and check that the total never changes.
 *
 * Build: cc -std=c99 share_exchange.c $(pkg-config --cflags --libs vibra) -o share_exchange
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <vibra.h>

#define VMS 4

static const double utilization[VMS] = {0.45, 0.35, 0.15, 0.05};

static void fail(const char *what, vibra_status status) {
    char message[256];
    vibra_last_error(message, sizeof message);
    fprintf(stderr, "share_exchange: %s: %s (%s)\n", what, vibra_status_str(status), message);
    exit(1);
}

static double print_round(const char *strategy, int round, const double *share) {
    double total = 0.0;
    int i;
    printf("%-11s round %2d:", strategy, round);
    for (i = 0; i < VMS; i++) {
        printf(" %.4f", share[i]);
        total += share[i];
    }
    printf("  (total %.4f)\n", total);
    return total;
}

static void check_total(double total) {
    if (fabs(total - 1.0) > 1e-9) {
        fprintf(stderr, "share_exchange: the total share changed to %.12f\n", total);
        exit(1);
    }
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    double share[VMS], shortage[VMS], grant[VMS], balance;
    int round, i;
    vibra_status status;

    /* Fully distributed: VM i's upstream is VM i-1; VM 0 has none. */
    for (i = 0; i < VMS; i++) {
        share[i] = 1.0 / VMS;
    }
    check_total(print_round("distributed", 0, share));
    for (round = 1; round <= rounds; round++) {
        for (i = VMS - 1; i >= 1; i--) {
            const uint32_t upstreams = 1;
            double offered;
            status = vibra_dps_offer(share[i], utilization[i], 1.0 / (upstreams + 1), upstreams,
                                     &offered);
            if (status != VIBRA_OK) {
                fail("vibra_dps_offer", status);
            }
            share[i] -= offered; /* the upstream accepts the offer */
            share[i - 1] += offered;
        }
        check_total(print_round("distributed", round, share));
    }

    /* Bank-assisted: deposits, shortages (hosts have spare capacity), one redistribution. */
    for (i = 0; i < VMS; i++) {
        share[i] = 1.0 / VMS;
    }
    check_total(print_round("bank", 0, share));
    for (round = 1; round <= rounds; round++) {
        balance = 0.0;
        for (i = 0; i < VMS; i++) {
            double excess = share[i] > utilization[i] ? share[i] - utilization[i] : 0.0;
            share[i] -= excess;
            balance += excess;
            shortage[i] = utilization[i] > share[i] ? utilization[i] - share[i] : 0.0;
        }
        status = vibra_dps_bank_redistribute(share, shortage, VMS, balance, grant);
        if (status != VIBRA_OK) {
            fail("vibra_dps_bank_redistribute", status);
        }
        for (i = 0; i < VMS; i++) {
            share[i] += grant[i];
        }
        check_total(print_round("bank", round, share));
    }
    return 0;
}
