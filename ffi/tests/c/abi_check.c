/*
 * The header's version macros against the library actually loaded: what a program compiled
 * against vibra.h would see at run time. Run by .ci/ffi.sh against the installed library.
 */
#include <stdio.h>
#include <string.h>

#include <vibra.h>

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "abi_check: failed: %s\n", #cond);                               \
            return 1;                                                                         \
        }                                                                                     \
    } while (0)

int main(void) {
    char expected[64];
    char message[8];
    CHECK(vibra_abi_version() == VIBRA_ABI_VERSION);
    CHECK(VIBRA_VERSION_NUMBER ==
          ((VIBRA_VERSION_MAJOR << 16) | (VIBRA_VERSION_MINOR << 8) | VIBRA_VERSION_PATCH));
    snprintf(expected, sizeof expected, "%u.%u.%u", (unsigned)VIBRA_VERSION_MAJOR,
             (unsigned)VIBRA_VERSION_MINOR, (unsigned)VIBRA_VERSION_PATCH);
    CHECK(vibra_version() != NULL);
    CHECK(strcmp(vibra_version(), expected) == 0);
    CHECK(strncmp(vibra_status_str(VIBRA_OK), "VIBRA_OK", 8) == 0);
    CHECK(strcmp(vibra_status_str(12345u), "unknown vibra_status code") == 0);
    /* A fresh thread has no error; a failing call sets one, cut to the buffer with its NUL. */
    CHECK(vibra_last_error(NULL, 0) == 0);
    CHECK(vibra_dispatcher_new(0, 1, VIBRA_HASH_FAST, NULL) == VIBRA_NULL_POINTER);
    CHECK(vibra_last_error(message, sizeof message) == strlen("argument `out` is NULL"));
    CHECK(strcmp(message, "argumen") == 0);
    printf("abi_check: libvibra %s, ABI %u: header and library agree\n", vibra_version(),
           (unsigned)vibra_abi_version());
    return 0;
}
