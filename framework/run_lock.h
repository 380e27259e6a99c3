// The claim on a run directory: RUN_DIR/run.lock, held with flock(2) for the run's whole life, so two
// trainers never share one directory and a live run is never resumed. The kernel drops the lock when the
// holder exits however it exits (SIGKILL included), so a stale lock file never blocks anyone.
#pragma once

#include <string>

namespace pgolf {

class RunLock {
 public:
  RunLock() = default;
  // Claims `dir` (which must exist): throws std::runtime_error naming the holder's pid when another process
  // holds it, or naming the file when it cannot be created.
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(RunLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  RunLock& operator=(RunLock&& o) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace pgolf
