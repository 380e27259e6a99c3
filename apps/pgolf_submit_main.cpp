// pgolf-submit: a finished multi-seed run (a pgolf-repro directory) as a record folder in the challenge's layout.
//
//   pgolf-submit SEEDS_DIR --out records/<name> [--name N] [--author A] [--github-id G] [--hardware H]
//                [--track T]
//
// Writes README.md (per-seed table, mean ± sd, artifact sizes, what the recipe changes against its base),
// submission.json (the fields of the challenge's records: val_bpb, val_bpb_std, seeds, seed_results, bytes_total,
// compliance, ...), train_seed<N>.log for every seed, and the first seed's artifact.bin and code/ bundle when
// present. Refuses, writing nothing, when a seed's artifact is over 16,000,000 bytes, fewer than 3 seeds
// finished, or a seed's recorded training or evaluation time is over 600 s. The folder appears whole or not
// at all (written beside --out, then renamed).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "apps/run_set.h"
#include "framework/io.h"
#include "framework/stats.h"

namespace fs = std::filesystem;
using pgolf::runs::InputError;
using pgolf::runs::Json;
using pgolf::runs::RecipeGroup;
using pgolf::runs::RunInfo;

namespace {

// The challenge's limits (10-minute track, 16 MB decimal).
constexpr int64_t kMaxArtifactBytes = 16000000;
constexpr double kMaxTrainSeconds = 600, kMaxEvalSeconds = 600;
constexpr int kMinSeeds = 3;

struct Options {
  std::string seeds_dir, out, name, author, github_id, hardware = "unknown", track = "10min_16mb";
};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

double num(const Json& s, const std::string& key, double fallback = NAN) {
  return s.contains(key) && s[key].is_number() ? s[key].get<double>() : fallback;
}

// Every evaluation stage's seconds (summary "eval_seconds" is {label: seconds}).
double eval_seconds(const Json& s) {
  if (!s.contains("eval_seconds")) return 0;
  if (s["eval_seconds"].is_number()) return s["eval_seconds"].get<double>();
  double total = 0;
  for (const auto& [k, v] : s["eval_seconds"].items())
    if (v.is_number()) total += v.get<double>();
  return total;
}

int64_t seed_of(const RunInfo& r) {
  if (r.recipe.is_object() && r.recipe.contains("seed")) return r.recipe["seed"].get<int64_t>();
  return std::stoll(fs::path(r.dir).filename().string().substr(5));  // seed-<N>
}

// Every reason the runs cannot be a record; empty when they can.
std::vector<std::string> refusals(const RecipeGroup& g) {
  std::vector<std::string> why;
  if (static_cast<int>(g.runs.size()) < kMinSeeds) {
    std::string failed;
    for (auto s : g.failed_seeds) failed += " " + std::to_string(s);
    why.push_back(std::to_string(g.runs.size()) + " seed(s) finished; a record needs at least " + std::to_string(kMinSeeds) +
                  (failed.empty() ? "" : " (failed:" + failed + ")"));
  }
  for (const auto& r : g.runs) {
    const std::string who = "seed " + std::to_string(seed_of(r)) + " (" + r.dir + ")";
    const double bytes = num(r.summary, "artifact_bytes");
    if (std::isnan(bytes)) why.push_back(who + ": summary.json has no artifact_bytes");
    else if (bytes > kMaxArtifactBytes)
      why.push_back(who + ": artifact is " + std::to_string(static_cast<int64_t>(bytes)) + " bytes, over the " +
                    std::to_string(kMaxArtifactBytes) + "-byte limit");
    const double train = num(r.summary, "train_seconds", 0);
    if (train > kMaxTrainSeconds)
      why.push_back(who + ": training took " + fmt("%.1f", train) + " s, over the " + std::to_string(int(kMaxTrainSeconds)) + " s limit");
    const double eval = eval_seconds(r.summary);
    if (eval > kMaxEvalSeconds)
      why.push_back(who + ": evaluation took " + fmt("%.1f", eval) + " s, over the " + std::to_string(int(kMaxEvalSeconds)) + " s limit");
  }
  return why;
}

// The keys the recipe file itself sets (what it changes against the recipe it extends), and that base.
std::pair<std::string, std::vector<std::string>> recipe_changes(const std::string& recipe_file) {
  std::ifstream in(recipe_file);
  Json j = in ? Json::parse(in, nullptr, false) : Json();
  if (!j.is_object()) return {"", {"(recipe file " + recipe_file + " not readable from here)"}};
  const std::string base = j.value("extends", "");
  j.erase("extends");
  j.erase("description");
  std::vector<std::string> keys;
  const Json flat = j.flatten();  // named: items() must not outlive it
  for (const auto& [k, v] : flat.items()) keys.push_back("`" + k.substr(1) + "` = `" + v.dump() + "`");
  for (auto& k : keys)  // JSON pointer "/a/b/0" -> a.b.0
    for (auto& c : k)
      if (c == '/') c = '.';
  return {base, keys};
}

std::string utc_date() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

Json seed_result(const RunInfo& r) {
  Json s{{"val_bpb", r.summary.value("val_bpb", Json())}, {"val_loss", r.summary.value("val_loss", Json())},
         {"artifact_bytes", r.summary.value("artifact_bytes", Json())}, {"steps", r.summary.value("steps", Json())},
         {"train_seconds", r.summary.value("train_seconds", Json())}, {"eval_seconds", eval_seconds(r.summary)}};
  if (r.summary.contains("pre_quant_val_bpb")) s["pre_quant_val_bpb"] = r.summary["pre_quant_val_bpb"];
  return s;
}

double max_of(const RecipeGroup& g, const std::string& key) {
  double m = 0;
  for (double v : pgolf::runs::values(g, key)) m = std::max(m, v);
  return m;
}

double max_eval(const RecipeGroup& g) {
  double m = 0;
  for (const auto& r : g.runs) m = std::max(m, eval_seconds(r.summary));
  return m;
}

Json submission(const RecipeGroup& g, const Options& o) {
  Json seeds = Json::array(), results = Json::object();
  for (const auto& r : g.runs) {
    seeds.push_back(seed_of(r));
    results[std::to_string(seed_of(r))] = seed_result(r);
  }
  const auto bpb = pgolf::runs::values(g, "val_bpb"), loss = pgolf::runs::values(g, "val_loss");
  const std::string blurb = g.runs[0].recipe.is_object() ? g.runs[0].recipe.value("description", "") : "";
  std::string summary;
  const auto changes = recipe_changes(g.recipe_file);
  for (const auto& k : changes.second) summary += (summary.empty() ? "" : "; ") + k;
  return Json{{"author", o.author},
              {"github_id", o.github_id},
              {"name", o.name},
              {"blurb", blurb},
              {"date", utc_date()},
              {"track", o.track},
              {"val_loss", pgolf::stats::mean(loss)},
              {"val_loss_std", pgolf::stats::sample_sd(loss)},
              {"val_bpb", pgolf::stats::mean(bpb)},
              {"val_bpb_std", pgolf::stats::sample_sd(bpb)},
              {"seeds", seeds},
              {"seed_results", results},
              {"bytes_total", static_cast<int64_t>(max_of(g, "artifact_bytes"))},
              {"bytes_code", static_cast<int64_t>(max_of(g, "artifact_code_bytes"))},
              {"hardware", o.hardware},
              {"pytorch_version", PGOLF_TORCH_VERSION " (LibTorch, C++)"},
              {"technique_summary", summary},
              {"recipe", g.recipe_file},
              {"compliance",
               {{"train_under_600s", max_of(g, "train_seconds") <= kMaxTrainSeconds},
                {"artifact_under_16mb", max_of(g, "artifact_bytes") <= kMaxArtifactBytes},
                {"eval_under_600s", max_eval(g) <= kMaxEvalSeconds},
                {"three_seeds", g.runs.size() >= 3}}}};
}

std::string readme(const RecipeGroup& g, const Json& sub) {
  std::ostringstream md;
  md << "# " << sub["name"].get<std::string>() << "\n\n";
  if (!sub["blurb"].get<std::string>().empty()) md << sub["blurb"].get<std::string>() << "\n\n";
  md << "**val_bpb " << fmt("%.5f", sub["val_bpb"].get<double>()) << " ± " << fmt("%.5f", sub["val_bpb_std"].get<double>())
     << "** (mean ± sample sd over " << g.runs.size() << " seeds; val_loss " << fmt("%.5f", sub["val_loss"].get<double>())
     << " ± " << fmt("%.5f", sub["val_loss_std"].get<double>()) << " nats). Recipe `" << g.recipe_file
     << "`, trained with pgolf.\n\n";
  md << "| seed | val_loss | val_bpb | steps | train s | eval s | artifact bytes |\n| --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& r : g.runs) {
    const Json& s = sub["seed_results"][std::to_string(seed_of(r))];
    md << "| " << seed_of(r) << " | " << fmt("%.5f", num(s, "val_loss")) << " | " << fmt("%.5f", num(s, "val_bpb")) << " | "
       << fmt("%.0f", num(s, "steps")) << " | " << fmt("%.1f", num(s, "train_seconds")) << " | "
       << fmt("%.1f", num(s, "eval_seconds")) << " | " << fmt("%.0f", num(s, "artifact_bytes")) << " |\n";
  }
  const auto [base, keys] = recipe_changes(g.recipe_file);
  md << "\nLargest artifact: " << sub["bytes_total"].get<int64_t>() << " bytes (code " << sub["bytes_code"].get<int64_t>()
     << "), " << (kMaxArtifactBytes - sub["bytes_total"].get<int64_t>()) << " under the 16,000,000-byte limit.\n\n";
  md << "## What the recipe changes" << (base.empty() ? "" : " against `" + base + "`") << "\n\n";
  for (const auto& k : keys) md << "- " << k << "\n";
  md << "\n## Files\n\n- `submission.json`\n";
  for (const auto& r : g.runs) md << "- `train_seed" << seed_of(r) << ".log`\n";
  md << "- `artifact.bin` and `code/` (when the run has them): seed " << seed_of(g.runs[0]) << "'s\n";
  return md.str();
}

void write_record(const RecipeGroup& g, const Options& o) {
  const std::string tmp = o.out + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    const Json sub = submission(g, o);
    pgolf::write_file_atomic(tmp + "/submission.json", sub.dump(2) + "\n");
    pgolf::write_file_atomic(tmp + "/README.md", readme(g, sub));
    for (const auto& r : g.runs)
      if (fs::exists(r.dir + "/train.log")) fs::copy_file(r.dir + "/train.log", tmp + "/train_seed" + std::to_string(seed_of(r)) + ".log");
    const std::string first = g.runs[0].dir;
    if (fs::exists(first + "/artifact.bin")) fs::copy_file(first + "/artifact.bin", tmp + "/artifact.bin");
    if (fs::is_directory(first + "/code")) fs::copy(first + "/code", tmp + "/code", fs::copy_options::recursive);
    fs::rename(tmp, o.out);
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto need = [&] { return pgolf::runs::flag_value(argc, argv, i); };
    if (a == "--out") o.out = need();
    else if (a == "--name") o.name = need();
    else if (a == "--author") o.author = need();
    else if (a == "--github-id") o.github_id = need();
    else if (a == "--hardware") o.hardware = need();
    else if (a == "--track") o.track = need();
    else if (a.rfind("--", 0) == 0) throw InputError("unknown argument '" + a + "'");
    else if (o.seeds_dir.empty()) o.seeds_dir = a;
    else throw InputError("one SEEDS_DIR only (got " + o.seeds_dir + " and " + a + ")");
  }
  if (o.seeds_dir.empty() || o.out.empty())
    throw InputError("usage: pgolf-submit SEEDS_DIR --out records/<name> [--name N] [--author A] [--github-id G] "
                     "[--hardware H] [--track T]");
  if (o.name.empty()) o.name = fs::path(o.out).filename().string();
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    if (fs::exists(o.out)) throw InputError("--out " + o.out + ": already exists; choose a new record folder");
    const auto groups = pgolf::runs::load_groups({o.seeds_dir});
    if (groups.size() != 1) throw InputError(o.seeds_dir + ": holds runs of more than one recipe");
    const auto why = refusals(groups[0]);
    if (!why.empty()) {
      std::string msg = o.seeds_dir + " cannot be a record:";
      for (const auto& w : why) msg += "\n  - " + w;
      throw InputError(msg);
    }
    write_record(groups[0], o);
    std::printf("pgolf-submit: record written to %s (%zu seeds)\n", o.out.c_str(), groups[0].runs.size());
    return 0;
  } catch (const InputError& e) {
    std::fprintf(stderr, "pgolf-submit: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pgolf-submit: %s\n", e.what());
    return 1;
  }
}
