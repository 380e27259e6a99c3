// pgolf-report: compares finished runs, grouped by recipe.
//
//   pgolf-report RUN_DIR... [--csv] [--baseline RECIPE [--unit bpb|nats] [--stage LABEL]
//                [--min-delta D] [--alpha A]] [--plot OUT.png]
//
// RUN_DIR is a trainer run directory or a pgolf-repro directory (every finished seed of it). Prints a table
// per recipe: every <stage>_val_bpb of the summaries, artifact bytes and budget left, steps, train seconds,
// tokens/s and MFU where present (mean ± sample sd over seeds). With --baseline: each other recipe's Δ mean,
// Welch's t-test and whether it clears the threshold; the ablation view lists the resolved-recipe keys each
// recipe changes against the baseline. --plot draws the loss curves with scripts/plot_runs.py (matplotlib).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "apps/run_set.h"
#include "framework/stats.h"

namespace fs = std::filesystem;
using pgolf::runs::InputError;
using pgolf::runs::Json;
using pgolf::runs::RecipeGroup;

namespace {

struct Options {
  std::vector<std::string> dirs;
  bool csv = false;
  std::string baseline, unit = "bpb", stage, plot;
  double min_delta = 0.005, alpha = 0.01;
};

// A table whose cells are already text; rendered as GitHub Markdown or CSV.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  void print(std::ostream& os, bool csv) const;
};

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void Table::print(std::ostream& os, bool csv) const {
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      if (csv) {
        os << (i ? "," : "") << csv_cell(cells[i]);
      } else {
        std::string c = cells[i];
        for (size_t p = 0; (p = c.find('|', p)) != std::string::npos; p += 2) c.replace(p, 1, "\\|");
        os << "| " << c << " ";
      }
    }
    os << (csv ? "\n" : "|\n");
  };
  line(header);
  if (!csv) {
    std::vector<std::string> rule(header.size(), "---");
    line(rule);
  }
  for (const auto& r : rows) line(r);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// One figure over a group's seeds. Markdown: "mean ± sd" (the value alone for one seed); CSV: mean, sd.
void add_figure(std::vector<std::string>& row, const std::vector<double>& v, const char* f, bool csv) {
  const double m = pgolf::stats::mean(v), sd = pgolf::stats::sample_sd(v);
  if (csv) {
    row.push_back(v.empty() ? "" : fmt(f, m));
    row.push_back(std::isnan(sd) ? "" : fmt(f, sd));
  } else {
    row.push_back(v.empty() ? "-" : std::isnan(sd) ? fmt(f, m) : fmt(f, m) + " ± " + fmt(f, sd));
  }
}

struct Column {
  std::string key, title;
  const char* format;
};

std::vector<Column> columns(const std::vector<RecipeGroup>& groups) {
  std::set<std::string> stages;
  bool mfu = false, bare = false;  // bare: a summary with a val_bpb but no <stage>_val_bpb
  for (const auto& g : groups)
    for (const auto& r : g.runs) {
      bool staged = false;
      for (const auto& [k, v] : r.summary.items()) {
        const std::string suffix = "_val_bpb";
        if (k.size() > suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0) {
          stages.insert(k);
          staged = true;
        }
        if (k == "mfu") mfu = true;
      }
      bare = bare || (!staged && r.summary.contains("val_bpb"));
    }
  if (bare) stages.insert("val_bpb");
  std::vector<Column> cols;
  for (const auto& s : stages) cols.push_back({s, s, "%.4f"});
  cols.push_back({"artifact_bytes", "artifact bytes", "%.0f"});
  cols.push_back({"budget_left", "budget left", "%.0f"});
  cols.push_back({"steps", "steps", "%.0f"});
  cols.push_back({"train_seconds", "train s", "%.1f"});
  cols.push_back({"tokens_per_second", "tokens/s", "%.0f"});
  if (mfu) cols.push_back({"mfu", "MFU", "%.3f"});
  return cols;
}

std::vector<double> figure(const RecipeGroup& g, const std::string& key) {
  if (key != "budget_left") return pgolf::runs::values(g, key);
  std::vector<double> left;
  for (const auto& r : g.runs)
    if (r.summary.contains("artifact_bytes") && r.summary["artifact_bytes"].is_number())
      left.push_back(static_cast<double>(pgolf::runs::budget_bytes(r.recipe) - r.summary["artifact_bytes"].get<int64_t>()));
  return left;
}

Table runs_table(const std::vector<RecipeGroup>& groups, bool csv) {
  const std::vector<Column> cols = columns(groups);
  Table t;
  t.header = {"recipe", "seeds"};
  for (const auto& c : cols) {
    if (csv) {
      t.header.push_back(c.key + "_mean");
      t.header.push_back(c.key + "_sd");
    } else {
      t.header.push_back(c.title);
    }
  }
  for (const auto& g : groups) {
    std::vector<std::string> row{g.label, std::to_string(g.runs.size())};
    if (!g.failed_seeds.empty()) {
      std::string f;
      for (auto s : g.failed_seeds) f += (f.empty() ? "" : " ") + std::to_string(s);
      row[1] += " (failed seeds: " + f + ")";
    }
    for (const auto& c : cols) add_figure(row, figure(g, c.key), c.format, csv);
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::string metric_key(const Options& o) {
  const std::string what = o.unit == "nats" ? "val_loss" : "val_bpb";
  return o.stage.empty() ? what : o.stage + "_" + what;
}

Table baseline_table(const std::vector<RecipeGroup>& groups, const RecipeGroup& base, const Options& o) {
  const std::string key = metric_key(o);
  const std::vector<double> b = pgolf::runs::values(base, key);
  if (b.empty()) throw InputError("baseline '" + base.label + "': no run's summary has \"" + key + "\"");
  Table t;
  t.header = {"recipe", "seeds"};
  if (o.csv) t.header.insert(t.header.end(), {key + "_mean", key + "_sd"});
  else t.header.push_back(key);
  t.header.insert(t.header.end(), {o.csv ? "delta_mean" : "Δ mean", "t", "df", "p", "clears"});
  for (const auto& g : groups) {
    const std::vector<double> v = pgolf::runs::values(g, key);
    std::vector<std::string> row{g.label, std::to_string(v.size())};
    add_figure(row, v, "%.4f", o.csv);
    if (&g == &base || v.empty()) {
      row.insert(row.end(), {&g == &base ? "(baseline)" : "-", "-", "-", "-", "-"});
    } else {
      const double delta = pgolf::stats::mean(v) - pgolf::stats::mean(b);
      row.push_back(fmt("%+.4f", delta));
      try {
        const auto w = pgolf::stats::welch_t_test(b, v);
        const bool clears = delta <= -o.min_delta && w.p < o.alpha;
        row.insert(row.end(), {fmt("%.3f", w.t), fmt("%.2f", w.df), fmt("%.4g", w.p), clears ? "yes" : "no"});
      } catch (const std::invalid_argument&) {
        row.insert(row.end(), {"-", "-", "-", "n/a (needs ≥ 2 seeds each, not both constant)"});
      }
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

Table ablation_table(const std::vector<RecipeGroup>& groups, const RecipeGroup& base, const Options& o) {
  const std::string key = metric_key(o);
  const double mb = pgolf::stats::mean(pgolf::runs::values(base, key));
  Table t;
  t.header = {"recipe", "extends " + base.label, (o.csv ? "delta_" : "Δ ") + key, "keys changed"};
  for (const auto& g : groups) {
    if (&g == &base) continue;
    const std::vector<double> v = pgolf::runs::values(g, key);
    std::string keys = "(no recipe.json)";
    if (!g.runs.empty() && !g.runs[0].recipe.is_null() && !base.runs[0].recipe.is_null()) {
      keys.clear();
      for (const auto& k : pgolf::runs::changed_keys(base.runs[0].recipe, g.runs[0].recipe))
        keys += (keys.empty() ? "" : "; ") + k;
      if (keys.empty()) keys = "(none)";
    }
    t.rows.push_back({g.label, pgolf::runs::extends(g.recipe_file, base.recipe_file),
                      v.empty() ? "-" : fmt("%+.4f", pgolf::stats::mean(v) - mb), keys});
  }
  return t;
}

void usage(FILE* to) {
  std::fprintf(to,
               "usage: pgolf-report RUN_DIR... [--csv] [--baseline RECIPE] [--unit bpb|nats] [--stage LABEL]\n"
               "                    [--min-delta D] [--alpha A] [--plot OUT.png]\n"
               "  RUN_DIR           a trainer run directory or a pgolf-repro directory (its finished seeds)\n"
               "  --csv             CSV instead of Markdown (mean and sd in separate columns)\n"
               "  --baseline R      Δ mean and Welch's t-test of every other recipe against recipe R (its file\n"
               "                    stem, e.g. default), and the keys each recipe changes against R\n"
               "  --unit bpb|nats   compare val_bpb (default) or val_loss (nats per token)\n"
               "  --stage LABEL     compare <LABEL>_val_bpb (e.g. quantized) instead of the final val_bpb\n"
               "  --min-delta D     improvement needed to clear, in the unit (default 0.005)\n"
               "  --alpha A         p-value needed to clear (default 0.01)\n"
               "  --plot OUT.png    also draw train loss and val bpb against step and time (matplotlib)\n");
}

double number(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || !(d >= 0)) throw InputError(flag + " " + v + ": expected a non-negative number");
  return d;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto need = [&] { return pgolf::runs::flag_value(argc, argv, i); };
    if (a == "--csv") o.csv = true;
    else if (a == "--baseline") o.baseline = need();
    else if (a == "--unit") o.unit = need();
    else if (a == "--stage") o.stage = need();
    else if (a == "--min-delta") o.min_delta = number(a, need());
    else if (a == "--alpha") o.alpha = number(a, need());
    else if (a == "--plot") o.plot = need();
    else if (a == "-h" || a == "--help") { usage(stdout); std::exit(0); }
    else if (a.rfind("--", 0) == 0) throw InputError("unknown argument '" + a + "'");
    else o.dirs.push_back(a);
  }
  if (o.dirs.empty()) throw InputError("give at least one RUN_DIR");
  if (o.unit != "bpb" && o.unit != "nats") throw InputError("--unit " + o.unit + ": expected bpb or nats");
  return o;
}

// The plotting script: $PGOLF_PLOT_SCRIPT, the source tree's, or the installed one beside bin/.
std::string plot_script() {
  if (const char* e = std::getenv("PGOLF_PLOT_SCRIPT")) return e;
  const std::string src = std::string(PGOLF_SOURCE_DIR) + "/scripts/plot_runs.py";
  if (fs::exists(src)) return src;
  std::error_code ec;
  return (fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path() / "share/pgolf/plot_runs.py").string();
}

int spawn(const std::vector<std::string>& args, bool quiet) {
  std::cout.flush();  // else the child would inherit, and could write again, what is still buffered
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    if (quiet) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A python3 that imports matplotlib: $PGOLF_PYTHON, else the first on PATH, else Debian's (python3-matplotlib).
std::string find_python() {
  std::vector<std::string> candidates{"python3", "/usr/bin/python3"};
  if (const char* e = std::getenv("PGOLF_PYTHON")) candidates = {e};
  for (const std::string& py : candidates)
    if (spawn({py, "-c", "import matplotlib"}, true) == 0) return py;
  return "";
}

// Exit 3 (not 1) when matplotlib is missing, so `make run` can warn and go on.
int plot(const Options& o, const std::vector<RecipeGroup>& groups) {
  const std::string py = find_python();
  if (py.empty()) {
    std::fprintf(stderr, "pgolf-report: warning: no plot written: matplotlib is not installed for python3 "
                         "(scripts/setup.sh installs the Debian package python3-matplotlib)\n");
    return 3;
  }
  std::vector<std::string> args{py, plot_script(), o.plot};
  for (const auto& g : groups)
    for (const auto& r : g.runs) args.insert(args.end(), {"--run", g.label, r.dir});
  const int rc = spawn(args, false);
  if (rc != 0) {
    std::fprintf(stderr, "pgolf-report: %s failed (exit %d); no plot written\n", plot_script().c_str(), rc);
    return 1;
  }
  std::fprintf(stderr, "pgolf-report: plot written to %s\n", o.plot.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const std::vector<RecipeGroup> groups = pgolf::runs::load_groups(o.dirs);
    runs_table(groups, o.csv).print(std::cout, o.csv);
    if (!o.baseline.empty()) {
      const RecipeGroup& base = pgolf::runs::find_group(groups, o.baseline);
      if (o.csv) std::cout << "\n";
      else std::cout << "\n## Against the baseline " << base.label << ": " << metric_key(o) << ", clears at Δ ≤ -"
                     << o.min_delta << " and p < " << o.alpha << " (Welch's t-test, two-sided)\n\n";
      baseline_table(groups, base, o).print(std::cout, o.csv);
      std::cout << (o.csv ? "\n" : "\n## Ablation: the resolved-recipe keys each recipe changes against " + base.label + "\n\n");
      ablation_table(groups, base, o).print(std::cout, o.csv);
    }
    return o.plot.empty() ? 0 : plot(o, groups);
  } catch (const InputError& e) {
    std::fprintf(stderr, "pgolf-report: %s\n", e.what());
    return 2;
  }
}
