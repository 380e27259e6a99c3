#include "framework/launcher.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "framework/log.h"
#include "framework/signals.h"

namespace pgolf {

namespace {

volatile sig_atomic_t g_signal = 0, g_count = 0;
void on_signal(int sig) {
  g_signal = sig;
  g_count = g_count + 1;
}

// A port the kernel just handed out on loopback (free now; rank 0's store binds it a moment later).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("trainer --nproc: no free TCP port on 127.0.0.1 for the rendezvous");
  ::close(fd);
  return ntohs(a.sin_port);
}

pid_t start_worker(int rank, int nproc, int port, const std::string& exe, const std::vector<std::string>& args) {
  std::vector<std::string> env = {"RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank),
                                  "WORLD_SIZE=" + std::to_string(nproc), "LOCAL_WORLD_SIZE=" + std::to_string(nproc),
                                  "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port),
                                  "PGOLF_LAUNCH_NPROC=" + std::to_string(nproc)};
  for (char** e = environ; *e; ++e) {  // the launcher's environment, less what the contract sets
    const std::string kv = *e;
    bool ours = false;
    for (size_t i = 0; i < 7 && !ours; ++i) ours = kv.compare(0, env[i].find('=') + 1, env[i], 0, env[i].find('=') + 1) == 0;
    if (!ours) env.push_back(kv);
  }
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> argv{const_cast<char*>(exe.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("trainer --nproc: fork failed");
  if (pid > 0) return pid;
  ::setpgid(0, 0);                     // a terminal's Ctrl-C reaches the launcher, which forwards it once
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // and a launcher killed outright takes its workers along
  if (::getppid() != parent) _exit(1);
  ::execve(exe.c_str(), argv.data(), envp.data());
  std::fprintf(stderr, "trainer --nproc: cannot run %s\n", exe.c_str());
  _exit(127);
}

std::string how_it_ended(int status) {
  if (WIFSIGNALED(status)) return "was killed by " + signal_name(WTERMSIG(status));
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

int exit_code_of(int status) { return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status); }

}  // namespace

int launch_local(int nproc, const std::string& exe, const std::vector<std::string>& args) {
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) pids.push_back(start_worker(r, nproc, port, exe, args));
  int running = nproc, code = 0, failed = -1, forwarded = 0;
  const char* grace = std::getenv("PGOLF_LAUNCH_GRACE_SECONDS");  // SIGTERM -> SIGKILL after a rank failed
  const int grace_seconds = grace ? std::atoi(grace) : 10;
  std::chrono::steady_clock::time_point kill_at = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    if (g_count != forwarded) {  // each signal the launcher gets goes to every live worker (a second one kills)
      forwarded = g_count;
      for (pid_t p : pids) if (p > 0) ::kill(p, g_signal);
    }
    if (std::chrono::steady_clock::now() >= kill_at) {  // a rank that ignores SIGTERM is hung or stopped
      for (int r = 0; r < nproc; ++r)
        if (pids[r] > 0) {
          log::error(strf("trainer --nproc %d: rank %d did not stop within %d s of SIGTERM (hung or stopped); killing it",
                          nproc, r, grace_seconds));
          ::kill(pids[r], SIGKILL);
        }
      kill_at = std::chrono::steady_clock::time_point::max();
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR) break;
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    int rank = 0;
    while (rank < nproc && pids[rank] != pid) ++rank;
    if (rank == nproc) continue;
    pids[rank] = -1;
    --running;
    if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) || failed >= 0) continue;
    failed = rank;
    code = exit_code_of(status);
    if (forwarded) continue;  // the workers were asked to stop: each checkpoints and exits on its own
    log::error(strf("trainer --nproc %d: rank %d %s; stopping the other ranks", nproc, rank, how_it_ended(status).c_str()));
    for (pid_t p : pids) if (p > 0) ::kill(p, SIGTERM);
    kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(grace_seconds);
  }
  return code;
}

}  // namespace pgolf
