#include "interrupt.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>

// Lock-free atomics are async-signal-safe; the first signal wins.
static atomic_int pending = 0;

void clbench_interrupt_record(int sig) {
    int expected = 0;
    atomic_compare_exchange_strong(&pending, &expected, sig);
}

static void handler(int sig) { clbench_interrupt_record(sig); }

int clbench_interrupt_install(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    return sigaction(sig, &sa, NULL);
}

int clbench_interrupt_pending(void) { return atomic_load(&pending); }

void clbench_interrupt_clear(void) { atomic_store(&pending, 0); }
