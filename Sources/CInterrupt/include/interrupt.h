#ifndef CLBENCH_INTERRUPT_H
#define CLBENCH_INTERRUPT_H

/// SIGTERM and SIGINT as a flag: the handler only records the signal (async-signal-safe), and the
/// runner looks at the flag between training steps (CLBench's `Interrupt`). C, because a Swift
/// function is not safe to run inside a signal handler.

/// Installs the recording handler for `sig` (SA_RESTART, so interrupted system calls resume).
/// Returns 0, or -1 with errno set.
int clbench_interrupt_install(int sig);

/// The first signal recorded since the start or the last clear; 0 when none.
int clbench_interrupt_pending(void);

/// Records `sig` as if it had arrived (only the first recorded signal is kept).
void clbench_interrupt_record(int sig);

/// Forgets the recorded signal.
void clbench_interrupt_clear(void);

#endif
