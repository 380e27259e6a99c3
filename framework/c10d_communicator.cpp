#include "framework/c10d_communicator.h"

#include <cstdlib>
#include <functional>
#include <stdexcept>

#ifdef PGOLF_WITH_GLOO
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef PGOLF_WITH_CUDA
#define USE_C10D_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>  // c10d::Work and ReduceOp with neither backend's header
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "framework/log.h"

namespace pgolf {

struct CommStore {
  c10::intrusive_ptr<c10d::Store> store;
};

namespace {

int env_int(const char* name, int fallback, bool required = false) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    if (required) throw std::runtime_error(std::string("distributed launch: the environment variable ") + name +
                                           " is not set (torchrun or `trainer --nproc N` set it)");
    return fallback;
  }
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0)
    throw std::runtime_error(std::string("distributed launch: ") + name + "='" + v + "' is not a non-negative integer");
  return static_cast<int>(x);
}

std::string what_of(const char* op, int rank, int world) {
  return strf("%s on rank %d of %d", op, rank, world);
}

// A c10d work item; wait() turns its failure (a peer lost, a timeout) into one message naming the rank.
struct C10dWork : Work {
  C10dWork(c10::intrusive_ptr<c10d::Work> w, std::string what, std::function<void()> after = {})
      : work(std::move(w)), what(std::move(what)), after(std::move(after)) {}
  void wait() override {
    try {
      work->wait();
    } catch (const std::exception& e) {
      throw std::runtime_error(what + " failed: " + e.what() +
                               " (another rank died or stopped answering; its own log says why)");
    }
    if (after) after();
  }
  c10::intrusive_ptr<c10d::Work> work;
  std::string what;
  std::function<void()> after;
};

c10d::ReduceOp c10d_op(ReduceOp op, bool native_avg) {
  switch (op) {
    case ReduceOp::Sum: return c10d::ReduceOp::SUM;
    case ReduceOp::Max: return c10d::ReduceOp::MAX;
    case ReduceOp::Min: return c10d::ReduceOp::MIN;
    case ReduceOp::Avg: return native_avg ? c10d::ReduceOp::AVG : c10d::ReduceOp::SUM;
  }
  return c10d::ReduceOp::SUM;
}

class C10dCommunicator : public Communicator {
 public:
  C10dCommunicator(const DistEnv& env, c10::intrusive_ptr<c10d::Store> store) : env_(env), store_(std::move(store)) {}
  int rank() const override { return env_.rank; }
  int world() const override { return env_.world; }
  int local_rank() const override { return env_.local_rank; }
  int local_world() const override { return env_.local_world; }
  bool collective() const override { return true; }

  WorkHandle all_reduce_async(torch::Tensor& t, ReduceOp op) override {
    const bool nccl = t.is_cuda();
    c10d::AllreduceOptions o;
    o.reduceOp = c10d_op(op, nccl);
    o.timeout = env_.timeout;
    std::vector<torch::Tensor> v{t};
    auto after = op == ReduceOp::Avg && !nccl ? std::function<void()>([t, w = world()]() mutable { t.div_(w); })
                                              : std::function<void()>();
    return std::make_shared<C10dWork>(backend(t)->allreduce(v, o), what_of("all-reduce", rank(), world()), after);
  }

  WorkHandle reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in, ReduceOp op) override {
    const bool nccl = in.is_cuda();
    c10d::ReduceScatterOptions o;
    o.reduceOp = c10d_op(op, nccl);
    o.timeout = env_.timeout;
    torch::Tensor src = in.contiguous();
    auto after = op == ReduceOp::Avg && !nccl ? std::function<void()>([out, w = world()]() mutable { out.div_(w); })
                                              : std::function<void()>();
    return std::make_shared<C10dWork>(backend(in)->_reduce_scatter_base(out, src, o),
                                      what_of("reduce-scatter", rank(), world()), after);
  }

  WorkHandle all_gather_async(torch::Tensor& out, const torch::Tensor& in) override {
    c10d::AllgatherOptions o;
    o.timeout = env_.timeout;
    torch::Tensor src = in.contiguous();
    return std::make_shared<C10dWork>(backend(in)->_allgather_base(out, src, o), what_of("all-gather", rank(), world()));
  }

  WorkHandle broadcast_async(torch::Tensor& t, int root) override {
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = env_.timeout;
    std::vector<torch::Tensor> v{t};
    return std::make_shared<C10dWork>(backend(t)->broadcast(v, o), what_of("broadcast", rank(), world()));
  }

  // Through the store (host only, no device work): every rank posts its key and waits for all of them; a
  // timeout names the ranks that never arrived.
  void barrier() override {
    const std::string base = "pgolf/barrier/" + std::to_string(barriers_++) + "/";
    std::vector<std::string> keys;
    for (int r = 0; r < world(); ++r) keys.push_back(base + std::to_string(r));
    try {
      store_->set(keys[rank()], std::vector<uint8_t>{1});
      store_->wait(keys, env_.timeout);
    } catch (const std::exception& e) {
      std::string missing;
      try {
        for (int r = 0; r < world(); ++r)
          if (!store_->check({keys[r]})) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      } catch (const std::exception&) {
        missing = "0 (it hosts the store, which is unreachable)";
      }
      throw std::runtime_error(strf("barrier on rank %d of %d failed after %llds: rank(s) %s never arrived (%s)", rank(),
                                    world(), (long long)(env_.timeout.count() / 1000), missing.c_str(), e.what()));
    }
  }

 private:
  c10::intrusive_ptr<c10d::Backend> backend(const torch::Tensor& t) {
    if (t.is_cuda()) {
#ifdef PGOLF_WITH_CUDA
      if (!nccl_) {
        auto o = c10d::ProcessGroupNCCL::Options::create();
        o->timeout = env_.timeout;
        nccl_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("nccl", store_),
                                                            rank(), world(), o);
      }
      return nccl_;
#else
      throw std::runtime_error("a CUDA tensor reached the communicator of a build without CUDA");
#endif
    }
#ifdef PGOLF_WITH_GLOO
    if (!gloo_) {
      auto o = c10d::ProcessGroupGloo::Options::create(env_.timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (env_.local_world == env_.world)  // one machine: loopback, whatever the hostname resolves to
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      o->threads = 1;
      gloo_ = c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store_), rank(),
                                                          world(), o);
    }
    return gloo_;
#else
    throw std::runtime_error("CPU collectives need Gloo, and this build has none (the gloo headers were not found: "
                             "install libgloo-dev and rebuild)");
#endif
  }

  DistEnv env_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> gloo_, nccl_;
  int64_t barriers_ = 0;
};

c10::intrusive_ptr<c10d::Store> rendezvous(const DistEnv& env) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(env.master_port);
  o.isServer = env.rank == 0 && !env.agent_store;
  o.numWorkers = env.agent_store ? std::nullopt : std::optional<size_t>(env.world);
  o.waitWorkers = !env.agent_store;
  o.timeout = env.timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  } catch (const std::exception& e) {
    throw std::runtime_error(strf("rank %d of %d: the rendezvous at %s:%d failed (%s); every rank must start within "
                                  "PGOLF_COMM_TIMEOUT_SECONDS=%lld",
                                  env.rank, env.world, env.master_addr.c_str(), env.master_port, e.what(),
                                  (long long)(env.timeout.count() / 1000)));
  }
  // torchrun's agent store is shared by its restarts: each attempt keys its own namespace, as torch does.
  if (env.agent_store)
    return c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count), store);
  return store;
}

}  // namespace

bool launched_distributed() {
  const char* w = std::getenv("WORLD_SIZE");
  return w && *w;
}

DistEnv dist_env_from_environment() {
  DistEnv e;
  e.world = env_int("WORLD_SIZE", 1, true);
  e.rank = env_int("RANK", 0, true);
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  e.local_world = env_int("LOCAL_WORLD_SIZE", e.world);
  e.master_port = env_int("MASTER_PORT", 0, true);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0);
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && std::string(agent) == "True";
  e.timeout = std::chrono::milliseconds(1000LL * env_int("PGOLF_COMM_TIMEOUT_SECONDS", 300));
  if (e.world < 1 || e.rank >= e.world || e.local_rank >= e.local_world || e.master_port == 0 || e.master_port > 65535)
    throw std::runtime_error(strf("distributed launch: RANK=%d WORLD_SIZE=%d LOCAL_RANK=%d LOCAL_WORLD_SIZE=%d "
                                  "MASTER_PORT=%d do not fit together (0 <= RANK < WORLD_SIZE, 0 <= LOCAL_RANK < "
                                  "LOCAL_WORLD_SIZE, 0 < MASTER_PORT < 65536)",
                                  e.rank, e.world, e.local_rank, e.local_world, e.master_port));
  return e;
}

std::shared_ptr<CommStore> make_hash_store() {
  return std::make_shared<CommStore>(CommStore{c10::make_intrusive<c10d::HashStore>()});
}

std::unique_ptr<Communicator> make_c10d_communicator(const DistEnv& env, std::shared_ptr<CommStore> store) {
  // NVLink multicast (NVLS) stays off unless the user sets NCCL_NVLS_ENABLE: our GPU machines must not use it.
  setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
  return std::make_unique<C10dCommunicator>(env, store ? store->store : rendezvous(env));
}

std::unique_ptr<Communicator> make_communicator() {
  if (!launched_distributed()) return std::make_unique<LocalCommunicator>();
  return make_c10d_communicator(dist_env_from_environment());
}

}  // namespace pgolf
