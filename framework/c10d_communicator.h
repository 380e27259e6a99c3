// The multi-process Communicator, over LibTorch's c10d: ProcessGroupGloo for CPU tensors, ProcessGroupNCCL
// for CUDA tensors (each made on first use, from one TCPStore rendezvous), so the same run code serves a
// CPU test on loopback and 8 GPUs under torchrun.
//
// The environment contract is torchrun's: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT (rank 0 hosts the store, or torchrun's agent does when TORCHELASTIC_USE_AGENT_STORE=True).
// PGOLF_COMM_TIMEOUT_SECONDS (default 300) bounds every collective and the rendezvous: a rank that died or
// hangs makes the others fail within it, with an error naming the collective and this rank.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "framework/comm.h"

namespace pgolf {

struct DistEnv {
  int rank = 0, world = 1, local_rank = 0, local_world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  bool agent_store = false;  // torchrun's agent hosts the store (all ranks are clients)
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT
  std::chrono::milliseconds timeout{300000};
};

// True when WORLD_SIZE is set (torchrun or `trainer --nproc`): the run is one rank of a c10d group.
bool launched_distributed();
// The contract's variables, checked (a missing or malformed one is a std::runtime_error naming it).
DistEnv dist_env_from_environment();

// LocalCommunicator without WORLD_SIZE, else the c10d communicator of this rank (rendezvous included).
std::unique_ptr<Communicator> make_communicator();

// A c10d key-value store (opaque here, so callers need no c10d header).
struct CommStore;
// An in-process store: the ranks of a test as threads of one process.
std::shared_ptr<CommStore> make_hash_store();
// The c10d communicator of `env`'s rank over `store` (null: the TCPStore rendezvous `env` names).
std::unique_ptr<Communicator> make_c10d_communicator(const DistEnv& env, std::shared_ptr<CommStore> store = nullptr);

}  // namespace pgolf
