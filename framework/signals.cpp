#include "framework/signals.h"

#include <csignal>
#include <cstring>

namespace pgolf {

namespace {

volatile std::sig_atomic_t g_signal = 0;

void on_stop_signal(int sig) {
  if (g_signal == 0) g_signal = sig;
  std::signal(SIGTERM, SIG_DFL);  // a second request is not polite any more
  std::signal(SIGINT, SIG_DFL);
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
