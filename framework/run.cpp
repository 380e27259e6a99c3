#include "framework/run.h"

#include <c10/core/Allocator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <new>

#include "framework/device.h"
#include "framework/log.h"
#include "framework/shard.h"

namespace pgolf {

namespace {

std::string gib(double bytes) { return strf("%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0)); }

// Memory this process may still use: MemAvailable, or less where a cgroup (v2) limit is lower.
// PGOLF_MODEL_MEMORY_BYTES overrides it (the tests of a model too large for the machine).
double available_memory_bytes() {
  if (const char* e = std::getenv("PGOLF_MODEL_MEMORY_BYTES"); e && *e) return std::atof(e);
  double avail = 0;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit)
    if (key == "MemAvailable:") avail = kb * 1024.0;
  std::ifstream max("/sys/fs/cgroup/memory.max"), cur("/sys/fs/cgroup/memory.current");
  double limit = 0, used = 0;
  if ((max >> limit) && (cur >> used) && limit > used && (avail == 0 || limit - used < avail)) avail = limit - used;
  return avail;
}

// The CPU allocator while a model is built: the bytes live in its allocations are counted, and one that
// would pass the budget is refused before it is made (and before init writes to it), so a model too large
// for the machine stops with its size named instead of thrashing or being killed.
struct BuildAllocator final : c10::Allocator {
  c10::Allocator* base = nullptr;
  std::atomic<bool> active{false};
  std::atomic<int64_t> live{0}, peak{0};
  double budget = 0;

  struct Ctx {
    c10::DataPtr inner;
    int64_t n;
  };
  static void release(void* p);
  c10::DataPtr allocate(size_t n) override {
    if (active && static_cast<double>(live + static_cast<int64_t>(n)) > budget) {
      peak = live + static_cast<int64_t>(n);  // what the build would have held with this allocation
      throw std::bad_alloc();
    }
    c10::DataPtr inner = base->allocate(n);
    void* data = inner.get();
    const c10::Device device = inner.device();
    live += static_cast<int64_t>(n);
    peak = std::max<int64_t>(peak, live);
    return c10::DataPtr(data, new Ctx{std::move(inner), static_cast<int64_t>(n)}, &BuildAllocator::release, device);
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
};

BuildAllocator& build_allocator() {
  static BuildAllocator* a = new BuildAllocator();  // never destroyed: storages it made may outlive the build
  return *a;
}

void BuildAllocator::release(void* p) {
  auto* c = static_cast<Ctx*>(p);
  build_allocator().live -= c->n;
  delete c;
}

// Installs the counting allocator for the scope of a model build.
struct BuildAllocatorScope {
  explicit BuildAllocatorScope(double budget) {
    auto& a = build_allocator();
    if (!a.base) a.base = c10::GetAllocator(c10::DeviceType::CPU);
    a.budget = budget;
    a.live = 0;
    a.peak = 0;
    a.active = true;
    c10::SetAllocator(c10::DeviceType::CPU, &a, /*priority=*/100);
  }
  ~BuildAllocatorScope() {
    auto& a = build_allocator();
    a.active = false;
    c10::SetAllocator(c10::DeviceType::CPU, a.base, /*priority=*/100);
  }
};

[[noreturn]] void too_large(const Recipe& recipe, const std::string& what) {
  throw ConfigError(recipe.file + ": model: too large for this machine: " + what +
                    "; make it smaller (model.dim, model.layers, model.vocab_size, the MLP's mult)");
}

}  // namespace

std::shared_ptr<LanguageModel> build_model(const Recipe& recipe, const torch::Device& device, bool for_training) {
  // On the CPU training keeps the weights, their gradients and the optimizer state (at least 3x the
  // weights); on a GPU, or for a model only scored, the CPU holds only the weights while they are built.
  const bool training_here = for_training && device.is_cpu();
  const double avail = available_memory_bytes(), factor = training_here ? 3.0 : 1.0;
  std::shared_ptr<LanguageModel> model;
  {
    BuildAllocatorScope scope(avail > 0 ? avail / factor : 1e300);
    try {
      model = ModelRegistry::get().build(recipe.section("model"));
    } catch (const std::bad_alloc&) {
      const double peak = static_cast<double>(build_allocator().peak);
      too_large(recipe, "its parameters and buffers passed " + gib(peak) + " (more than " +
                            std::to_string(static_cast<int64_t>(peak / 4)) + " fp32 values) while being built, and " +
                            (training_here ? "training on the CPU needs about 3x the weights (gradients, optimizer "
                                               "state) of the " + gib(avail) + " available"
                                             : "the " + gib(avail) + " of memory available cannot hold them"));
    } catch (const c10::Error& e) {
      if (std::string(e.what_without_backtrace()).find("alloc") == std::string::npos) throw;
      too_large(recipe, std::string("building it failed to allocate memory (") + e.what_without_backtrace() + ")");
    }
  }
  try {
    model->to(device);
  } catch (const c10::Error& e) {
    const int64_t n = count_parameters(*model);
    if (std::string(e.what_without_backtrace()).find("out of memory") == std::string::npos) throw;
    too_large(recipe, std::to_string(n) + " parameters (" + gib(4.0 * static_cast<double>(n)) + " in fp32) do not fit on " +
                          device.str() + " (" + e.what_without_backtrace() + ")");
  }
  model->set_compute_dtype(compute_dtype(device));
  return model;
}

namespace {

std::vector<NamedParam> named_params(LanguageModel& m) {
  std::vector<NamedParam> out;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) out.push_back({p.key(), p.value()});
  return out;
}

BatchPlan plan_batch(const Recipe& r, int world) {
  const Config data = r.section("data");
  const int64_t micro = data.i("micro_batches"), seq_len = data.i("seq_len"), batch_tokens = data.i("batch_tokens");
  data.check(micro % world == 0, "micro_batches", "a multiple of the world size " + std::to_string(world));
  data.check(batch_tokens % (micro * seq_len) == 0, "batch_tokens",
             "a multiple of data.micro_batches x data.seq_len = " + std::to_string(micro) + " x " +
                 std::to_string(seq_len) + " = " + std::to_string(micro * seq_len));
  return BatchPlan{seq_len, batch_tokens, micro / world, batch_tokens / micro};
}

// Every training shard's header and size now (not when the loader reaches it), and enough tokens for a step:
// each rank's micro-batch takes local_tokens + 1 (the last target), so an empty or one-token set is refused.
void check_train_shards(const Run& run, const std::vector<std::string>& files) {
  const int64_t have = count_shard_tokens(files);
  const int64_t need = run.batch.batch_tokens + run.batch.accum * run.comm->world();
  if (have < need)
    throw std::runtime_error("training shards [" + files.front() + (files.size() > 1 ? ", ..." : "") + "] give " +
                             std::to_string(have) + " tokens, fewer than one step's data.batch_tokens + 1 per micro-batch = " +
                             std::to_string(need) + "; use more training data or a smaller data.batch_tokens");
}

// The val tokens are read once, so their ids are checked up front rather than by the embedding after training.
void check_val_ids(const Run& run, const std::vector<std::string>& files) {
  const int64_t vocab = run.model->vocab_size();
  if (run.val.tokens.max().item<int64_t>() < vocab) return;
  const TokenAt at = first_id_at_least(files, vocab, run.val.tokens.numel());
  throw std::runtime_error("validation data: " + (at.found ? describe_bad_id(at, vocab) : "a token id is outside the model's vocabulary"));
}

}  // namespace

Run build_run(Recipe recipe, Communicator& comm) {
  Run run;
  run.recipe = std::move(recipe);
  run.comm = &comm;
  const Config root = run.recipe.root(), train = root.sub("train");
  if (train.i("threads") > 0) torch::set_num_threads(static_cast<int>(train.i("threads")));
  torch::manual_seed(static_cast<uint64_t>(root.i("seed")));
  run.device = choose_device(train.s("device"), comm.local_rank());
  run.model = build_model(run.recipe, run.device, /*for_training=*/true);
  run.params = count_parameters(*run.model);
  run.optimizers = build_optimizers(root.sub("optim"), named_params(*run.model), &comm);
  for (const auto& h : train.list("hooks")) run.hooks.push_back(TrainingHookRegistry::get().build(h));
  run.schedule = ScheduleRegistry::get().build(root.sub("schedule"));
  run.evaluator = EvaluatorRegistry::get().build(root.sub("eval").sub("evaluator"));
  run.pipeline = build_pipeline(root);
  run.batch = plan_batch(run.recipe, comm.world());
  return run;
}

void build_data(Run& run) {
  const Config data = run.recipe.section("data"), eval = run.recipe.section("eval");
  Communicator& comm = *run.comm;
  const auto train_files = glob_shards(data.s("train"));
  check_train_shards(run, train_files);
  run.train_data = LoaderContext{train_files, run.batch.seq_len, run.batch.local_tokens, comm.rank(),
                                 comm.world(), static_cast<uint64_t>(run.recipe.root().i("seed"))};
  run.loader = LoaderRegistry::get().build(data.sub("loader"), run.train_data);
  const auto val_files = glob_shards(data.s("val"));
  run.val = load_val_stream(val_files, run.batch.seq_len, data.i("val_max_tokens"));
  check_val_ids(run, val_files);
  run.bytes = ByteCounterRegistry::get().build(eval.sub("byte_counter"),
                                               ByteCounterContext{data.s("tokenizer"), val_files, run.model->vocab_size()});
  const int64_t tv = run.bytes->tokenizer_vocab_size();
  run.recipe.section("model").check(tv <= 0 || tv == run.model->vocab_size(), "vocab_size",
                                    "the size of the tokenizer " + data.s("tokenizer") + ", " + std::to_string(tv) +
                                        " pieces (the shards were made with it); make them match");
  run.eval = EvalContext{run.batch.seq_len, std::max<int64_t>(run.batch.seq_len, eval.i("batch_tokens") / comm.world()),
                         run.device, &comm, "val", ""};
}

void log_run(const Run& run) {
  const Config root = run.recipe.root();
  log::info("recipe: " + run.recipe.file);
  log::info("model: " + root.sub("model").name() + "  device: " + run.device.str() + "  compute: " +
            std::string(compute_dtype(run.device) == torch::kBFloat16 ? "bf16" : "fp32") + "  params: " +
            std::to_string(run.params));
  const auto groups = root.sub("optim").list("groups");
  for (size_t i = 0; i < run.optimizers.size(); ++i) {
    int64_t n = 0;
    for (const auto& p : run.optimizers[i]->params()) n += p.param.numel();
    log::info(strf("optim.groups[%zu]: %s  lr %g  tensors %zu  params %lld", i, groups[i].name().c_str(),
                   run.optimizers[i]->base_lr(), run.optimizers[i]->params().size(), (long long)n));
  }
}

}  // namespace pgolf
