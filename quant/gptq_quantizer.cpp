// gptq: the export of #1755, #1693, #1855 and #1938 (spec posttrain §4.2–§4.3, §5, §6). Per tensor, in order:
//   the small-tensor policy (raw / gate int8-row / fp16 passthrough)  quant/small_tensors.h
//   a larger float 2-D matrix -> GPTQ with SD-clip row scales, int<bits> ±cr, bits and k by its group
//     (embed, attn, mlp by name pattern, first match; everything else "other"), with the input Hessian the
//     calibration stage collected under the parameter's name                               quant/gptq.h
//   then LQER factors for the top_k tensors by ‖W − Q·s‖_F                                  quant/lqer.h
//   a larger float tensor of another rank -> fp16 passthrough.
// Same-shaped matrices of one group run as one batch (on the GPU all c_q at once, as Muon does).
#include <algorithm>

#include "framework/log.h"
#include "quant/gptq.h"
#include "quant/lqer.h"
#include "quant/small_tensors.h"

namespace pgolf {
namespace {

constexpr const char* kName = "gptq";

struct Group {
  std::string name;
  std::vector<std::string> patterns;  // empty: the rest
  int bits;
  double k;
};

struct Job {
  std::string name;
  torch::Tensor w;  // fp32 on the quantising device
  torch::Tensor h;  // (cols, cols)
  size_t group;
  torch::Tensor q, s;  // results: int8 codes, fp16 scales
};

class GptqQuantizer : public Quantizer {
 public:
  explicit GptqQuantizer(const Config& c)
      : small_(quant::SmallTensorPolicy::from(c.sub("small"))), lqer_(quant::lqer_options(c.sub("lqer"))),
        batched_(c.b("batched")), identity_ok_(c.s("no_hessian") == "identity") {
    for (const char* g : {"embed", "attn", "mlp", "other"}) {
      const Config s = c.sub(g);
      groups_.push_back(Group{g, s.strings("patterns"), static_cast<int>(s.i("bits")), s.f("k")});
    }
    opt_.block = c.i("block_size");
    opt_.damping = c.f("damping");
    opt_.act_order = c.b("act_order");
  }

  QuantizedState quantize(const QuantizerContext& ctx) const override {
    QuantizedState out;
    quant::StateWriter wr(out, kName);
    std::vector<Job> jobs;
    std::vector<std::string> no_h;
    for (const auto& [name, src] : ctx.state)
      if (!small_.handles(name, src) && src.dim() == 2) jobs.push_back(make_job(name, src, ctx, no_h));
    if (!no_h.empty())
      log::info(strf("gptq: %zu matrices have no Hessian and are rounded with H = I (first: %s)", no_h.size(),
                     no_h.front().c_str()));
    run_jobs(jobs);
    std::map<std::string, Job*> by_name;
    for (auto& j : jobs) by_name[j.name] = &j;
    const auto lqer = lqer_factors(jobs);
    for (const auto& [name, src] : ctx.state) {  // written in the state's order, whatever the batching
      auto it = by_name.find(name);
      if (it != by_name.end()) {
        write_job(*it->second, lqer, wr);
        continue;
      }
      const torch::Tensor cpu = src.detach().to(torch::kCPU);
      if (!small_.apply(name, cpu, wr, kName)) quant::write_passthrough(name, cpu, torch::kFloat16, wr, kName);
    }
    log_summary(jobs, lqer.size());
    return out;
  }

  NamedTensors dequantize(const QuantizedState& q) const override { return quant::dequantize_state(q, kName); }

 private:
  size_t group_of(const std::string& name) const {
    for (size_t g = 0; g + 1 < groups_.size(); ++g)
      for (const auto& p : groups_[g].patterns)
        if (name.find(p) != std::string::npos) return g;
    return groups_.size() - 1;
  }

  Job make_job(const std::string& name, const torch::Tensor& src, const QuantizerContext& ctx,
               std::vector<std::string>& no_h) const {
    const torch::Tensor w = src.detach().to(ctx.device, torch::kFloat32);
    if (!torch::isfinite(w).all().item<bool>())
      throw std::runtime_error(std::string(kName) + " quantize: tensor '" + name +
                               "' holds NaN or Inf; training diverged, there is nothing to quantise");
    const int64_t cols = w.size(1);
    torch::Tensor h;
    auto it = ctx.hessians.find(name);
    if (it != ctx.hessians.end()) {
      h = it->second.to(ctx.device, torch::kFloat32);
      if (h.dim() != 2 || h.size(0) != cols || h.size(1) != cols)
        throw std::runtime_error(std::string(kName) + " quantize: the Hessian of '" + name + "' is " + c10::str(h.sizes()) +
                                 ", its input width is " + std::to_string(cols));
    } else if (identity_ok_) {
      h = torch::eye(cols, w.options());
      no_h.push_back(name);
    } else {
      throw std::runtime_error(std::string(kName) + " quantize: no Hessian for '" + name +
                               "' (put a calibrate stage before quantize whose tap policy covers it, or set "
                               "no_hessian to \"identity\")");
    }
    return Job{name, w, h, group_of(name), {}, {}};
  }

  // Same group and shape: one batch (or one matrix at a time when not batched).
  void run_jobs(std::vector<Job>& jobs) const {
    std::map<std::pair<size_t, std::vector<int64_t>>, std::vector<Job*>> buckets;
    for (size_t i = 0; i < jobs.size(); ++i) {
      auto key = std::make_pair(jobs[i].group, jobs[i].w.sizes().vec());
      if (!batched_) key.second.push_back(static_cast<int64_t>(i));
      buckets[key].push_back(&jobs[i]);
    }
    for (auto& [key, js] : buckets) {
      const Group& g = groups_[key.first];
      std::vector<torch::Tensor> ws, hs;
      for (auto* j : js) ws.push_back(j->w), hs.push_back(j->h);
      const torch::Tensor w = torch::stack(ws), h = torch::stack(hs);
      quant::GptqOptions o = opt_;
      o.bits = g.bits;
      const torch::Tensor s = quant::sdclip_scales(w, g.k, g.bits);
      const torch::Tensor q = quant::gptq_codes(w, h, s, o);
      for (size_t i = 0; i < js.size(); ++i) {
        js[i]->q = q[static_cast<int64_t>(i)];
        js[i]->s = s[static_cast<int64_t>(i)];
      }
    }
  }

  // The top_k tensors by absolute ‖E‖_F (spec §5.2: over every GPTQ tensor, the embedding included).
  std::map<std::string, std::pair<NamedTensors, Json>> lqer_factors(const std::vector<Job>& jobs) const {
    std::map<std::string, std::pair<NamedTensors, Json>> out;
    if (lqer_.top_k <= 0 || jobs.empty()) return out;
    std::vector<std::pair<double, size_t>> norms;
    std::vector<torch::Tensor> errs;
    for (size_t i = 0; i < jobs.size(); ++i) {
      errs.push_back(jobs[i].w - jobs[i].q.to(torch::kFloat32) * jobs[i].s.to(torch::kFloat32).unsqueeze(1));
      norms.emplace_back(errs.back().norm().item<double>(), i);
    }
    std::stable_sort(norms.begin(), norms.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t r = 0; r < std::min<size_t>(static_cast<size_t>(lqer_.top_k), norms.size()); ++r) {
      const size_t i = norms[r].second;
      out[jobs[i].name] = quant::lqer_encode(jobs[i].name, errs[i].to(torch::kCPU), lqer_);
    }
    return out;
  }

  void write_job(const Job& j, const std::map<std::string, std::pair<NamedTensors, Json>>& lqer,
                 quant::StateWriter& wr) const {
    const Group& g = groups_[j.group];
    Json m = quant::entry_meta("gptq", j.w, j.name, kName);
    m["bits"] = g.bits;
    m["k"] = g.k;
    wr.emit(j.name + ".q", j.q.to(torch::kCPU).contiguous());
    wr.emit(j.name + ".scale", j.s.to(torch::kCPU).contiguous());
    auto it = lqer.find(j.name);
    if (it != lqer.end()) {
      for (const auto& [n, t] : it->second.first) wr.emit(n, t.contiguous());
      m["lqer"] = it->second.second;
    }
    wr.meta(j.name, std::move(m));
  }

  void log_summary(const std::vector<Job>& jobs, size_t lqer) const {
    std::vector<int64_t> count(groups_.size(), 0);
    for (const auto& j : jobs) ++count[j.group];
    std::string s;
    for (size_t g = 0; g < groups_.size(); ++g)
      if (count[g] > 0) s += strf(" %s %lld x int%d (k %.4g);", groups_[g].name.c_str(), (long long)count[g], groups_[g].bits, groups_[g].k);
    log::info(strf("gptq:%s LQER on %zu", s.c_str(), lqer));
  }

  std::vector<Group> groups_;
  quant::SmallTensorPolicy small_;
  quant::LqerOptions lqer_;
  quant::GptqOptions opt_;
  bool batched_, identity_ok_;
};

Schema group_schema(std::vector<std::string> patterns, int64_t bits, double k, const std::string& what) {
  return Schema()
      .string_list("patterns", std::move(patterns), "name substrings of the " + what + " (first group that matches wins)")
      .integer("bits", bits, 2, 8, "symmetric int<bits> codes in [-(2^(bits-1)-1), 2^(bits-1)-1]")
      .number("k", k, 0.0, 1e6, "SD-clip: row scale = k * std(row) / clip range");
}

Schema gptq_schema() {
  return Schema()
      .section("embed", group_schema({"tok_emb"}, 8, 20.0, "tied embedding"), "the tied embedding's bits and k")
      .section("attn", group_schema({".attn."}, 6, 12.85, "attention matrices"), "attention matrices' bits and k")
      .section("mlp", group_schema({".mlp."}, 6, 12.85, "MLP matrices"), "MLP matrices' bits and k")
      .section("other", group_schema({}, 6, 12.85, "other matrices (patterns unused: the rest)"),
               "every other large matrix's bits and k")
      .integer("block_size", 128, 1, 1 << 20, "GPTQ lazy-update block (columns)")
      .number("damping", 0.01, 0.0, 1e3, "H += damping * mean(diag H) * I")
      .boolean("act_order", true, "quantise columns in descending diag(H) order")
      .boolean("batched", true, "quantise same-shaped matrices of a group as one batch")
      .choice("no_hessian", "identity", {"identity", "error"},
              "a large matrix without a collected Hessian: round it with H = I (SD-clip RTN), or stop")
      .section("small", quant::SmallTensorPolicy::schema(), "small tensors: fp16 passthrough, gate int8-row")
      .section("lqer", quant::lqer_schema(), "low-rank error factors for the worst tensors");
}

PGOLF_REGISTER(QuantizerRegistry, kName, gptq_schema(),
               [](const Config& c) -> std::shared_ptr<Quantizer> { return std::make_shared<GptqQuantizer>(c); },
               "GPTQ with SD-clip row scales per tensor group, LQER factors, small-tensor policy (spec posttrain 4-6)");

}  // namespace
}  // namespace pgolf
