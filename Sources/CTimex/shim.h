// adjtimex(2) from the C library (no library to link): Swift's Glibc module does not include <sys/timex.h>.
// Seen only by Sources/GatewayCore/Time/TrustedClock.swift (is the kernel clock synchronised: STA_UNSYNC).
#include <sys/timex.h>

static inline int swapgate_adjtimex_read(int *status) {
    struct timex tx = {0};
    tx.modes = 0;
    int state = adjtimex(&tx);
    *status = tx.status;
    return state;
}
