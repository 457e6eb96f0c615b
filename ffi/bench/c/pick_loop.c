/*
 * The C side of the pick benchmark (ffi/bench/benches/pick.rs): a C program's dispatch loop,
 * calling vibra_dispatcher_pick through the public header exactly as an nginx module would. The
 * Rust side runs the same loop over the same data against vibra-hash directly.
 */
#include <vibra.h>

uint64_t bench_c_pick_loop(const vibra_dispatcher *d, const char *const *targets,
                           const size_t *lens, size_t n, const uint32_t *loads, size_t n_loads) {
    uint64_t sum = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t server;
        if (vibra_dispatcher_pick(d, targets[i], lens[i], loads, n_loads, &server) == VIBRA_OK) {
            sum += server;
        }
    }
    return sum;
}
