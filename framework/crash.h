// A fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL) prints the native stack to stderr before the process dies
// as it would have (same signal, same exit status), so a crash on a remote machine names where it happened.
#pragma once

namespace pgolf {
void install_crash_report();
}  // namespace pgolf
