#include "framework/run.h"

#include "framework/device.h"
#include "framework/log.h"
#include "framework/shard.h"

namespace pgolf {

std::shared_ptr<LanguageModel> build_model(const Recipe& recipe, const torch::Device& device) {
  auto model = ModelRegistry::get().build(recipe.section("model"));
  model->to(device);
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
  if (micro % world != 0)
    throw ConfigError(r.file + ": data.micro_batches: " + std::to_string(micro) + " must be a multiple of the world size " +
                      std::to_string(world));
  if (batch_tokens % (micro * seq_len) != 0)
    throw ConfigError(r.file + ": data.batch_tokens: " + std::to_string(batch_tokens) +
                      " must be a multiple of data.micro_batches x data.seq_len = " + std::to_string(micro * seq_len));
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
  run.model = build_model(run.recipe, run.device);
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
  if (const int64_t tv = run.bytes->tokenizer_vocab_size(); tv > 0 && tv != run.model->vocab_size())
    throw ConfigError(run.recipe.file + ": model.vocab_size is " + std::to_string(run.model->vocab_size()) +
                      " but the tokenizer " + data.s("tokenizer") + " has " + std::to_string(tv) +
                      " pieces; make them match (the shards were made with that tokenizer)");
  run.eval = EvalContext{run.batch.seq_len, std::max<int64_t>(run.batch.seq_len, eval.i("batch_tokens") / comm.world()),
                         run.device, &comm, "val"};
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
