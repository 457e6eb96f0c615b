/* Line-oriented driver for vibra_netif_ts.h, used by tests/c_twin.rs. One command per line on
 * stdin, one answer per line on stdout ("<rc> <outputs...>"; outputs are printed even on error
 * so the test can check they were left untouched: they start as all-ones sentinels). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "vibra_netif_ts.h"

static void print_rec(const uint8_t r[8])
{
	int i;
	for (i = 0; i < 8; i++)
		printf(" %02x", r[i]);
}

static int read_rec(uint8_t r[8])
{
	unsigned v[8];
	int i;
	if (scanf("%x %x %x %x %x %x %x %x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
		  &v[7]) != 8)
		return 0;
	for (i = 0; i < 8; i++)
		r[i] = (uint8_t)v[i];
	return 1;
}

int main(void)
{
	struct vibra_netif_ts_hires enc, dec;
	char cmd[4];
	int rc;
	setvbuf(stdout, NULL, _IOLBF, 0);
	vibra_netif_ts_hires_init(&enc);
	vibra_netif_ts_hires_init(&dec);
	while (scanf("%3s", cmd) == 1) {
		if (!strcmp(cmd, "P")) {
			uint32_t s, u;
			uint64_t p = UINT64_MAX;
			if (scanf("%" SCNu32 " %" SCNu32, &s, &u) != 2)
				return 2;
			rc = vibra_netif_ts48_pack(s, u, &p);
			printf("%d %" PRIu64 "\n", rc, p);
		} else if (!strcmp(cmd, "U")) {
			uint64_t p;
			uint32_t s = UINT32_MAX, u = UINT32_MAX;
			if (scanf("%" SCNu64, &p) != 1)
				return 2;
			rc = vibra_netif_ts48_unpack(p, &s, &u);
			printf("%d %" PRIu32 " %" PRIu32 "\n", rc, s, u);
		} else if (!strcmp(cmd, "E")) {
			uint32_t s, u;
			unsigned f;
			uint8_t r[8];
			memset(r, 0xff, sizeof r);
			if (scanf("%" SCNu32 " %" SCNu32 " %u", &s, &u, &f) != 3)
				return 2;
			rc = vibra_netif_ts_extra_encode(s, u, (uint8_t)f, r);
			printf("%d", rc);
			print_rec(r);
			printf("\n");
		} else if (!strcmp(cmd, "D")) {
			uint8_t r[8], f = 0xff;
			uint32_t s = UINT32_MAX, u = UINT32_MAX;
			if (!read_rec(r))
				return 2;
			rc = vibra_netif_ts_extra_decode(r, &s, &u, &f);
			printf("%d %" PRIu32 " %" PRIu32 " %u\n", rc, s, u, (unsigned)f);
		} else if (!strcmp(cmd, "H")) {
			uint64_t n;
			int more;
			uint8_t out[2][8];
			unsigned count = 0, i;
			if (scanf("%" SCNu64 " %d", &n, &more) != 2)
				return 2;
			rc = vibra_netif_ts_hires_encode(&enc, n, more, out, &count);
			printf("%d %u", rc, count);
			for (i = 0; i < count; i++)
				print_rec(out[i]);
			printf("\n");
		} else if (!strcmp(cmd, "R")) {
			uint8_t r[8];
			int is_time = -1;
			uint64_t v = UINT64_MAX;
			if (!read_rec(r))
				return 2;
			rc = vibra_netif_ts_hires_decode(&dec, r, &is_time, &v);
			printf("%d %d %" PRIu64 "\n", rc, is_time, v);
		} else if (!strcmp(cmd, "A")) {
			vibra_netif_ts_hires_agree(&enc);
			printf("0\n");
		} else if (!strcmp(cmd, "Z")) {
			vibra_netif_ts_hires_init(&enc);
			vibra_netif_ts_hires_init(&dec);
			printf("0\n");
		} else {
			return 2;
		}
	}
	return 0;
}
