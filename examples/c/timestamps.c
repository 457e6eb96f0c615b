/*
 * timestamps: 48-bit packet-arrival timestamps and the 8-byte ring records that carry them from
 * a Xen backend to the guest (dissertation ch. 6, SPEC section 7).
 *
 *   timestamps [SEC.FRACTION ...]
 *
 * Packs each time (now, if none is given) into 48 bits, writes the records as one chain (every
 * record but the last carries VIBRA_NETIF_EXTRA_FLAG_MORE), prints them as bytes, then walks
 * the chain back the way a guest's netfront would and prints what it decodes. Times lose at
 * most 15 us (the 16 us resolution).
 *
 * Build: cc -std=c99 timestamps.c $(pkg-config --cflags --libs vibra) -o timestamps
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vibra.h>

static void fail(const char *what, vibra_status status) {
    char message[256];
    vibra_last_error(message, sizeof message);
    fprintf(stderr, "timestamps: %s: %s (%s)\n", what, vibra_status_str(status), message);
    exit(1);
}

int main(int argc, char **argv) {
    size_t count = argc > 1 ? (size_t)(argc - 1) : 1, i, j;
    uint8_t *chain = malloc(count * VIBRA_TS_RECORD_LEN);
    vibra_status status;

    if (chain == NULL) {
        return 1;
    }
    for (i = 0; i < count; i++) {
        uint32_t sec, usec, back_sec, back_usec;
        uint64_t packed;
        uint8_t flags = i + 1 < count ? VIBRA_NETIF_EXTRA_FLAG_MORE : 0;
        if (argc > 1) {
            /* SEC or SEC.FRACTION, the fraction read as decimal digits: 1.5 is 1 s 500000 us. */
            unsigned long s = 0;
            char digits[7] = "";
            int fields = sscanf(argv[i + 1], "%lu.%6[0-9]", &s, digits);
            size_t k;
            if (fields < 1 || s > UINT32_MAX) {
                fprintf(stderr, "timestamps: '%s' is not SEC.FRACTION\n", argv[i + 1]);
                return 2;
            }
            for (k = strlen(digits); k < 6; k++) {
                digits[k] = '0';
            }
            digits[6] = '\0';
            sec = (uint32_t)s;
            usec = (uint32_t)strtoul(digits, NULL, 10);
        } else {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            sec = (uint32_t)now.tv_sec;
            usec = (uint32_t)(now.tv_nsec / 1000);
        }
        status = vibra_ts48_pack(sec, usec, &packed);
        if (status != VIBRA_OK) {
            fail("vibra_ts48_pack", status);
        }
        status = vibra_ts48_unpack(packed, &back_sec, &back_usec);
        if (status != VIBRA_OK) {
            fail("vibra_ts48_unpack", status);
        }
        printf("%" PRIu32 ".%06" PRIu32 " -> packed 0x%012" PRIx64 " -> %" PRIu32 ".%06" PRIu32
               "\n",
               sec, usec, packed, back_sec, back_usec);
        status = vibra_ts_extra_encode(sec, usec, flags, chain + i * VIBRA_TS_RECORD_LEN);
        if (status != VIBRA_OK) {
            fail("vibra_ts_extra_encode", status);
        }
    }

    for (i = 0;; i++) {
        const uint8_t *record = chain + i * VIBRA_TS_RECORD_LEN;
        uint32_t sec, usec;
        uint8_t flags;
        printf("record %zu:", i);
        for (j = 0; j < VIBRA_TS_RECORD_LEN; j++) {
            printf(" %02x", record[j]);
        }
        status = vibra_ts_extra_decode(record, &sec, &usec, &flags);
        if (status != VIBRA_OK) {
            fail("vibra_ts_extra_decode", status);
        }
        printf("  = %" PRIu32 ".%06" PRIu32 "%s\n", sec, usec,
               (flags & VIBRA_NETIF_EXTRA_FLAG_MORE) ? ", more follow" : "");
        if (!(flags & VIBRA_NETIF_EXTRA_FLAG_MORE)) {
            break;
        }
    }

    /* A record of another type is refused, with a message saying why. */
    {
        uint8_t gso[8] = {1, 0, 0, 0, 0, 0, 0, 0};
        uint32_t sec, usec;
        uint8_t flags;
        status = vibra_ts_extra_decode(gso, &sec, &usec, &flags);
        if (status != VIBRA_INVALID_ARGUMENT) {
            fprintf(stderr, "timestamps: a GSO record was not refused\n");
            return 1;
        }
    }
    free(chain);
    return 0;
}
