package kernel

// rseqNote says why rseq stays ENOSYS. Application code runs on host
// threads that the host schedules, preempts and migrates without the
// sentry seeing it (no system call happens), and several sandbox threads
// run at once on different host CPUs while getcpu reports CPU 0 for all.
// A registered rseq area could then neither show a true cpu_id nor have
// its critical sections aborted at a preemption, so per-CPU data that
// rseq users keep (tcmalloc, librseq) would be corrupted; without rseq,
// glibc and musl fall back to getcpu and atomics.
const rseqNote = "on purpose, as in a kernel built without CONFIG_RSEQ: the sentry does not see the host preempt or migrate a thread running application code, so it could neither keep cpu_id true nor abort a critical section there; glibc and the Go runtime do without"
