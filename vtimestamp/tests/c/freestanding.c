/* Compiled with -ffreestanding by tests/c_twin.rs: the header needs nothing beyond stdint. */
#include "vibra_netif_ts.h"

int vibra_netif_ts_freestanding_check(uint8_t out[8])
{
	return vibra_netif_ts_extra_encode(1, 16, VIBRA_NETIF_EXTRA_FLAG_MORE, out);
}
