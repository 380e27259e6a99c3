#include "framework/signals.h"

#include <csignal>
#include <cstring>
#include <ctime>

namespace pgolf {

namespace {

volatile std::sig_atomic_t g_signal = 0;
timespec g_first{};  // when the first one came

// One request can arrive twice within microseconds (`timeout` signals the process and then its whole
// group): a repeat within a second is the same request; a later one takes the default action (kills).
void on_stop_signal(int sig) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (g_signal == 0) {
    g_first = now;
    g_signal = sig;
    return;
  }
  if ((now.tv_sec - g_first.tv_sec) + (now.tv_nsec - g_first.tv_nsec) * 1e-9 < 1.0) return;
  std::signal(sig, SIG_DFL);  // a second request is not polite any more
  std::raise(sig);            // delivered once this handler returns
}

}  // namespace

void install_stop_signals() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

int stop_signal() { return g_signal; }

std::string signal_name(int sig) {
  if (sig == SIGTERM) return "SIGTERM";
  if (sig == SIGINT) return "SIGINT";
  if (sig == SIGKILL) return "SIGKILL";
  const char* d = strsignal(sig);
  return "signal " + std::to_string(sig) + (d ? std::string(" (") + d + ")" : "");
}

}  // namespace pgolf
