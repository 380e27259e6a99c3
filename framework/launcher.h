// `trainer --nproc N ...`: starts N local workers of the same command under torchrun's environment contract
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT free), for machines
// without Python torch (CPU runs, tests). SIGTERM/SIGINT are forwarded to every worker (which checkpoint and
// exit 143/130). When a worker dies, the launcher names its rank and how it ended, stops the others (SIGTERM,
// then SIGKILL after PGOLF_LAUNCH_GRACE_SECONDS, default 10) and exits non-zero.
#pragma once

#include <string>
#include <vector>

namespace pgolf {

// Runs `exe args...` as `nproc` workers; returns the launcher's exit code (0 when every worker exited 0,
// else the first failed worker's code, 128 + signal when it was killed).
int launch_local(int nproc, const std::string& exe, const std::vector<std::string>& args);

}  // namespace pgolf
