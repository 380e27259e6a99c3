// SIGTERM (what torchrun and schedulers send) and SIGINT ask a run to stop: the handler only records the
// signal; the step loop notices it after the current step, agrees on it with every rank, writes a checkpoint
// and ends with Interrupted (exit 128 + signal: 143 or 130) and the resume command; in the post-training
// pipeline, before the next stage. A repeat within a second counts as the same request; a later second
// signal takes its default action at once (kills the process).
#pragma once

#include <stdexcept>
#include <string>

namespace pgolf {

void install_stop_signals();
// The first stop signal received (SIGTERM or SIGINT), or 0.
int stop_signal();
// "SIGTERM", "SIGINT", ...
std::string signal_name(int sig);

// Thrown once a signalled run has stopped cleanly; the trainer exits with `code`.
struct Interrupted : std::runtime_error {
  Interrupted(const std::string& what, int code) : std::runtime_error(what), code(code) {}
  int code;
};

}  // namespace pgolf
