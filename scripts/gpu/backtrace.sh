#!/usr/bin/env bash
# A program that crashes on the GPU machine, run again under cuda-gdb (the image has no gdb; cuda-gdb debugs
# host-only programs too): on a fatal signal it prints the faulting instruction, the registers, the mapping
# of the pc and every thread's backtrace, then kills the program. Exit status: the program's, or 1 when
# it stopped on a signal.
#   device:   scripts/gpu/backtrace.sh build-gpu/bin/pgolf-artifact bench pergroup
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: backtrace.sh PROGRAM [ARGS...]" >&2; exit 2; }
GDB=$(command -v cuda-gdb || ls /usr/local/cuda/bin/cuda-gdb 2>/dev/null || command -v gdb)
[ -n "$GDB" ] || { echo "[backtrace] neither cuda-gdb nor gdb found: running $1 plainly" >&2; exec "$@"; }
# The crash report handler (framework/crash.cpp) would run first and re-raise; gdb sees the signal before it.
out=$("$GDB" -q -batch -nx -ex 'set pagination off' -ex 'set print thread-events off' -ex 'set confirm off' \
  -ex 'handle SIGPIPE nostop noprint pass' -ex 'handle SIGCHLD nostop noprint pass' -ex run \
  -ex 'echo \n[backtrace] stopped:\n' -ex 'info program' -ex 'x/6i $pc' -ex 'info registers rip rsp rbp rax rdi rsi' \
  -ex 'info symbol $pc' -ex 'info sharedlibrary' -ex 'thread apply all bt 30' -ex kill --args "$@" 2>&1)
echo "$out"
grep -q "exited normally" <<<"$out" && exit 0
code=$(grep -oE "exited with code [0-9]+" <<<"$out" | grep -oE "[0-9]+$")
[ -n "$code" ] && exit $((8#$code))  # gdb prints it in octal
exit 1
