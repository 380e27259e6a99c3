#include "framework/recipe.h"

#include <filesystem>
#include <set>
#include <vector>

#include "framework/io.h"

namespace fs = std::filesystem;

namespace pgolf {

namespace {

// A SAX pass that finds the first key given twice in one object (nlohmann's parser keeps the last one
// silently), with its key path: "model.dim", "pipeline[2].label".
class DuplicateKeyFinder {
 public:
  using Int = Json::number_integer_t;
  using Uint = Json::number_unsigned_t;
  using Float = Json::number_float_t;
  std::string found;  // the key path of the first duplicate, "" when there is none

  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(Int) { return value(); }
  bool number_unsigned(Uint) { return value(); }
  bool number_float(Float, const std::string&) { return value(); }
  bool string(std::string&) { return value(); }
  bool binary(Json::binary_t&) { return value(); }
  bool start_object(std::size_t) { return open(false); }
  bool start_array(std::size_t) { return open(true); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(std::string& k) {
    Frame& f = stack_.back();
    f.at = "." + k;
    if (!f.keys.insert(k).second) {
      for (const auto& e : stack_) found += e.at;
      if (!found.empty() && found[0] == '.') found.erase(0, 1);
      return false;  // stop at the first
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

 private:
  struct Frame {
    bool array = false;
    std::set<std::string> keys;
    std::string at;  // this level's part of the current key path: ".key" or "[i]"
    int64_t next = 0;
  };
  bool value() {
    if (!stack_.empty() && stack_.back().array) stack_.back().at = "[" + std::to_string(stack_.back().next++) + "]";
    return true;
  }
  bool open(bool array) {
    value();
    stack_.push_back(Frame{array, {}, "", 0});
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }
  std::vector<Frame> stack_;
};

// `text` parsed as JSON, refusing a key given twice in one object. `what` starts the messages ("FILE");
// `at` is the key path of the text's value in the recipe ("" for a whole file, "pipeline" for --set pipeline=...).
Json parse_json_checked(const std::string& text, const std::string& what, const std::string& at = "") {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw ConfigError(what + ": not valid JSON: " + e.what());
  }
  DuplicateKeyFinder dup;
  Json::sax_parse(text, &dup);
  if (!dup.found.empty())
    throw ConfigError(what + ": " + (at.empty() || dup.found[0] == '[' ? at : at + ".") + dup.found + ": duplicate key (given twice in one object; JSON would keep only the "
                      "last and silently drop the other): remove one");
  return j;
}

Json parse_json_file(const std::string& file) {
  std::string text;
  try {
    text = read_file(file);
  } catch (const std::exception& e) {
    throw ConfigError(std::string(e.what()) + " (the recipe file must exist and be readable)");
  }
  return parse_json_checked(text, file);
}

void merge_into(Json& base, const Json& over) {
  for (auto& [k, v] : over.items()) {
    if (base.contains(k) && base[k].is_object() && v.is_object()) merge_into(base[k], v);
    else base[k] = v;
  }
}

Json load_chain(const std::string& file, std::set<std::string>& seen) {
  const std::string canon = fs::weakly_canonical(fs::path(file)).string();
  if (seen.count(canon)) throw ConfigError(file + ": \"extends\" forms a cycle");
  seen.insert(canon);
  Json j = parse_json_file(file);
  if (!j.is_object()) throw ConfigError(file + ": a recipe must be a JSON object");
  if (!j.contains("extends")) return j;
  if (!j["extends"].is_string()) throw ConfigError(file + ": extends: expected a path to another recipe");
  const fs::path parent = fs::path(file).parent_path() / j["extends"].get<std::string>();
  Json base = load_chain(parent.string(), seen);
  j.erase("extends");
  merge_into(base, j);
  return base;
}

void apply_override(Json& j, const std::string& spec, const std::string& name) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set " + spec + ": expected key.path=value (for example train.iterations=100)");
  const std::string path = spec.substr(0, eq), text = spec.substr(eq + 1);
  Json value;
  if (Json::accept(text)) value = parse_json_checked(text, name + ": --set " + spec, path);
  else value = text;  // bare words are strings: --set model.attention.name=gqa
  Json* cur = &j;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (key.empty()) throw ConfigError("--set " + spec + ": empty key in path '" + path + "'");
    if (cur->is_array()) {  // a list entry by its index: --set pipeline.8.evaluator.lr=0
      if (key.find_first_not_of("0123456789") != std::string::npos || std::stoull(key) >= cur->size())
        throw ConfigError(name + ": --set " + spec + ": '" + key + "' is not an index of the " +
                          std::to_string(cur->size()) + "-entry list '" + path.substr(0, start ? start - 1 : 0) + "'");
      cur = &(*cur)[std::stoull(key)];
      if (dot == std::string::npos) {
        *cur = value;
        break;
      }
      start = dot + 1;
      continue;
    }
    if (dot == std::string::npos) {
      (*cur)[key] = value;
      break;
    }
    if (!cur->contains(key)) (*cur)[key] = Json::object();
    if (!(*cur)[key].is_object() && !(*cur)[key].is_array())
      throw ConfigError(name + ": --set " + spec + ": '" + path.substr(0, dot) + "' is not a section");
    cur = &(*cur)[key];
    start = dot + 1;
  }
}

// The framework's post-training pipeline: averaged weights scored, pruned, quantised (int8 per row),
// compressed (zlib), written, reloaded from the artifact's bytes and scored again.
Json default_pipeline() {
  return Json::array({Json{{"name", "apply_averaging"}}, Json{{"name", "evaluate"}, {"label", "pre_quant"}},
                      Json{{"name", "prune"}}, Json{{"name", "quantize"}}, Json{{"name", "write_artifact"}},
                      Json{{"name", "reload_artifact"}}, Json{{"name", "evaluate"}, {"label", "quantized"}}});
}

Schema make_recipe_schema() {
  Schema data;
  data.string("train", "data/default/default_train_*.bin", "glob of training token shards (_bytes_ sidecars are ignored)")
      .string("val", "data/default/default_val_*.bin", "glob of validation token shards")
      .string("tokenizer", "data/default/tokenizer.model", "SentencePiece model the shards were made with")
      .integer("seq_len", 1024, 1, 1 << 20, "tokens per training sequence")
      .integer("batch_tokens", 524288, 1, 1LL << 34, "tokens per optimizer step, over all ranks and micro-steps")
      .integer("micro_batches", 8, 1, 4096,
               "micro-batches per optimizer step over all ranks; each rank runs micro_batches / world of them "
               "(the reference submissions use 8: grad_accum = 8 / world size)")
      .integer("val_max_tokens", 0, 0, 1LL << 40, "use at most this many validation tokens (0 = all)")
      .component("loader", "loader", "token_stream", "training batch loader");

  Schema optim;
  optim.component_list("groups", "optimizer", "parameter groups, first match wins")
      .number("grad_clip_norm", 0.0, 0.0, 1e9, "global L2 gradient clip (0 = off)")
      .boolean("grad_clip_local", false,
               "clip each rank's own gradient before the cross-rank average (A2, spec 3.6: the update is the mean of "
               "locally clipped gradients) instead of the averaged one; the same thing with one process")
      .string_list("control_patterns", {"attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight"},
                   "name substrings of control tensors (kept fp32, sent to scalar groups)");

  Schema train;
  train.integer("iterations", 20000, 0, 1e12, "optimizer steps at most")
      .number("max_wallclock_seconds", 600.0, 0.0, 1e9, "training-time cap (0 = none); evaluation pauses it")
      .number("wallclock_reserve_seconds", 0.0, 0.0, 1e9, "stop this much before the cap")
      .integer("log_every", 200, 0, 1e12, "progress line every N steps (0 = first 10 and last only)")
      .integer("val_every", 1000, 0, 1e12, "validate every N steps (0 = only at the end)")
      .choice("device", "auto", {"auto", "cpu", "cuda"}, "where to train (auto: cuda when available)")
      .integer("threads", 0, 0, 1024, "CPU intra-op threads (0 = torch default)")
      .integer("warmup_steps", 0, 0, 1e9,
               "real steps at LR scale 1 before training that warm kernels and allocators, then are rolled back "
               "exactly (weights, optimizer states, loader position, RNG); not an LR warmup (spec 3.3)")
      .integer("warmup_looped_steps", 0, 0, 1e9,
               "more rolled-back warmup steps run as if at the end of training (on_train_progress(1)), so what "
               "switches on late, such as family A's depth loop, is warmed up too")
      .integer("checkpoint_every", 0, 0, 1e12,
               "write RUN_DIR/checkpoint.bin every N steps (0 = never); `trainer --resume RUN_DIR` continues from it")
      .boolean("checkpoint_on_signal", true,
               "on SIGTERM/SIGINT finish the step, write RUN_DIR/checkpoint.bin (even with checkpoint_every 0) and "
               "exit 143/130 with the resume command; false: exit so without a checkpoint")
      .number("grad_bucket_mb", 25.0, 0.0, 1e6,
              "data-parallel gradient all-reduce bucket size in MiB (each bucket launches once its gradients are in)")
      .integer("nan_check_every", 100, 0, 1e12,
               "read the device-side NaN/Inf flag of the loss and gradient norm back every N steps (a host sync), "
               "besides every log and checkpoint step; 0 = only then. A divergence stops the run at most this late")
      .integer("stuck_loss_steps", 200, 0, 1e12,
               "warn when the training loss at log steps has stayed at ln(vocab_size) (a uniform guess: within 2%) "
               "or above for this many steps: the model is not learning (0 = never warn)")
      .component_list("hooks", "training_hook",
                      "training hooks, in order: weight averaging (ema, swa), late_qat, magnitude_prune (empty = none)");

  Schema eval;
  eval.component("evaluator", "evaluator", "full", "how validation is scored")
      .component("byte_counter", "byte_counter", "lut", "how target bytes are counted for val_bpb")
      .integer("batch_tokens", 524288, 1, 1LL << 34, "validation tokens per forward over all ranks");

  Schema root;
  root.string("description", "", "what this recipe is")
      .integer("seed", 1337, 0, 4294967295.0, "run seed (weights init, data order where the loader uses it)")
      .section("data", data, "training and validation data")
      .component("model", "model", "gpt", "the model")
      .section("optim", optim, "optimizers and parameter groups")
      .component("schedule", "schedule", "linear_warmdown", "learning-rate schedule")
      .section("train", train, "the training loop")
      .section("eval", eval, "validation during training")
      .component_list("pipeline", "stage", "post-training stages, in order (framework/pipeline.h)", default_pipeline());
  return root;
}

}  // namespace

const Schema& recipe_schema() {
  static const Schema schema = make_recipe_schema();
  return schema;
}

Recipe resolve_recipe(const Json& raw, const std::string& name, const std::vector<std::string>& overrides) {
  Json j = raw;
  for (const auto& o : overrides) apply_override(j, o, name);
  Recipe r;
  r.file = name;
  r.resolved = recipe_schema().validate(j, "", name);
  return r;
}

Recipe load_recipe(const std::string& file, const std::vector<std::string>& overrides) {
  std::set<std::string> seen;
  return resolve_recipe(load_chain(file, seen), file, overrides);
}

}  // namespace pgolf
