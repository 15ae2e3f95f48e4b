#include "textflag.h"

// _rt0_snap is snap's ELF entry point when it is linked with
// -ldflags=-E=_rt0_snap (make build, the tests' builds): it calls
// snap_fast_take (csrc/take.c, linked from take_linux_amd64.syso) on the
// process's initial stack, with a pointer to argc (argv, envp and auxv
// follow) and entryTaken's address, and if that returns starts Go as the
// default entry point would, from the same stack pointer. R12 is
// callee-saved in the C calling convention.
TEXT _rt0_snap(SB),NOSPLIT|NOFRAME,$0
	MOVQ	SP, R12
	MOVQ	SP, DI
	MOVQ	$·entryTaken(SB), SI
	ANDQ	$~15, SP
	CALL	snap_fast_take(SB)
	MOVQ	R12, SP
	JMP	_rt0_amd64_linux(SB)
