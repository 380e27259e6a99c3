#include "ttt/phased_lora_ttt.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>

#include "framework/log.h"
#include "framework/optimizer.h"
#include "framework/profiler.h"

#include "framework/grad_clip.h"
#include "framework/grad_sync.h"
#include "framework/loader.h"
#include "framework/shard.h"
#include "framework/score_ledger.h"
#include "ttt/doc_schedule.h"

namespace pgolf {

PhasedLoraTtt::PhasedLoraTtt(const Config& c)
    : bos_(c.i("bos_id")), doc_batch_(c.i("doc_batch")), chunk_(c.i("chunk")), context_(c.i("context")),
      prefix_(c.i("prefix_docs")), phases_(c.i("phases")), seed_(c.i("seed")), warm_a_(c.b("warm_start_a")),
      lr_(c.f("lr")), beta2_(c.f("beta2")), wd_(c.f("weight_decay")), sgd_lr_(c.f("sgd_lr")),
      sgd_momentum_(c.f("sgd_momentum")), sgd_clip_(c.f("sgd_grad_clip")), sgd_chunk_(c.i("sgd_chunk_tokens")),
      sgd_seq_len_(c.i("sgd_seq_len")), sgd_batch_(c.i("sgd_batch")), sgd_epochs_(c.i("sgd_epochs")),
      cu_pad_(c.i("cu_seqlens_pad")) {
  c.check(chunk_ <= context_, "chunk", "at most context (" + std::to_string(context_) + ")");
  lora_.rank = c.i("rank");
  lora_.scale = c.f("alpha") > 0 ? c.f("alpha") / static_cast<double>(lora_.rank) : 1.0;
  lora_.k = c.b("k_lora");
  lora_.o = c.b("o_lora");
  lora_.mlp = c.b("mlp_lora");
}

struct PhasedLoraTtt::Pass {
  Pass(const PhasedLoraTtt& c, LanguageModel& m, const ValStream& val, const ByteCounter& b, const EvalContext& e)
      : cfg(c), model(m), ctx(e), bytes(b), host(val.tokens.contiguous()), tokens(val.tokens.to(e.device)),
        T(val.tokens.numel() - 1), ledger(T, e.device, e.communicator()), gen(at::detail::createCPUGenerator(0)) {
    docs = split_documents(host.data_ptr<int64_t>(), host.numel(), cfg.bos_);
    std::vector<int64_t> lengths;
    for (const auto& d : docs) lengths.push_back(d.pred_len);
    batches = doc_batches(lengths, cfg.doc_batch_);
    boundaries = phase_boundaries(std::min<int64_t>(cfg.prefix_, static_cast<int64_t>(docs.size())), cfg.phases_);
    ends = phase_ends(batches, boundaries);
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(e.device);
    loss_sum = torch::zeros({}, f64);
    byte_sum = torch::zeros({}, f64);
    cols = torch::arange(cfg.context_, torch::TensorOptions().dtype(torch::kInt64).device(e.device));
    k_cols = torch::arange(cfg.chunk_, torch::TensorOptions().dtype(torch::kInt64).device(e.device)).view({1, -1});
    for (const auto& p : model.parameters()) base.push_back(p);
    Schema s;  // the adapters' AdamW: the "adam" optimizer component (ATen's fused kernel on CUDA), beta1 0
    s.component("c", "optimizer", "", "the LoRA optimizer");
    adam = Config(s.validate(Json{{"c", {{"name", "adam"}, {"lr", cfg.lr_}, {"beta1", 0.0}, {"beta2", cfg.beta2_},
                                         {"eps", 1e-10}, {"weight_decay", cfg.wd_}}}}, "", "phased_lora_ttt"), "").sub("c");
    if (!e.profile_path.empty()) profiler = std::make_unique<StepProfiler>(e.profile_path, kProfileFirst, 3, e.device);
  }
  static constexpr int64_t kProfileFirst = 60;  // chunks 60-62: the first batch's longest documents at full width

  // Batches [lo, hi) of one phase, this rank's share by LPT.
  void score_batches(int64_t lo, int64_t hi, int64_t phase) {
    std::vector<double> costs;
    for (int64_t j = lo; j < hi; ++j) costs.push_back(batch_cost(batches[static_cast<size_t>(j)], docs, cfg.chunk_, cfg.context_));
    const auto owner = assign_ranks(costs, ctx.world());
    for (int64_t j = lo; j < hi; ++j)
      if (owner[static_cast<size_t>(j - lo)] == ctx.rank()) score_batch(j, phase);
  }

  void score_batch(int64_t j, int64_t phase) {
    const auto& ids = batches[static_cast<size_t>(j)];
    const auto b = static_cast<int64_t>(ids.size());
    const bool fresh = !lora || lora->batch() != b;  // a new LoRA object draws A (also each phase: lora reset to null)
    if (fresh) lora = std::make_shared<BatchedLora>(model, b, cfg.lora_, ctx.device);
    gen.set_current_seed(static_cast<uint64_t>(cfg.seed_) * 1000003ULL + static_cast<uint64_t>(phase) * 7919ULL + static_cast<uint64_t>(j));
    lora->reset(fresh || !cfg.warm_a_, gen);
    std::vector<NamedParam> named;
    for (const auto& p : lora->parameters()) named.push_back({"lora." + std::to_string(named.size()), p});
    auto opt = OptimizerRegistry::get().build(adam, OptimizerContext{named, nullptr});  // fresh state per batch
    ScopedTap tap(model.taps(), lora);
    int64_t chunks = 0;
    for (int64_t d : ids) chunks = std::max(chunks, doc_chunks(docs[static_cast<size_t>(d)].pred_len, cfg.chunk_));
    for (int64_t ci = 0; ci < chunks; ++ci) {
      if (profiler) profiler->before_step(++chunks_run);
      score_chunk(ids, ci, *opt);
      if (profiler) profiler->after_step(chunks_run);
    }
    ledger.flush_deferred([&](int64_t ci) {  // one host sync per batch
      std::string what = "chunk " + std::to_string(ci) + " of batch " + std::to_string(j) + " (documents";
      for (size_t r = 0; r < ids.size() && r < 4; ++r) what += " " + std::to_string(ids[r]);
      return what + (ids.size() > 4 ? " ...)" : ")");
    });
  }

  // One chunk of every document of the batch: the forward scores it, then (not its last chunk) trains on it.
  // Every row holds its window [ws, end) left-aligned; the head and CE run on its chunk's columns alone.
  void score_chunk(const std::vector<int64_t>& ids, int64_t ci, Optimizer& opt) {
    const auto b = static_cast<int64_t>(ids.size());
    const int64_t C = cfg.chunk_, width = std::min(C * (ci + 1), cfg.context_);
    std::vector<int64_t> meta(static_cast<size_t>(4 * b));  // stream start of the window, window length, first scored column, trains
    bool any_train = false;
    for (int64_t r = 0; r < b; ++r) {
      const Doc& d = docs[static_cast<size_t>(ids[static_cast<size_t>(r)])];
      const int64_t n = doc_chunks(d.pred_len, C);
      const bool active = ci < n, last = ci == n - 1;
      const int64_t end = active ? (last ? d.pred_len : C * (ci + 1)) : 0, ws = std::max<int64_t>(0, end - cfg.context_);
      meta[static_cast<size_t>(r)] = d.start + ws;
      meta[static_cast<size_t>(b + r)] = end - ws;
      meta[static_cast<size_t>(2 * b + r)] = C * ci - ws;
      meta[static_cast<size_t>(3 * b + r)] = active && !last;
      any_train = any_train || (active && !last);
      if (active) scored += end - C * ci;
    }
    auto m = to_device(meta).view({4, b, 1});
    auto c = cols.slice(0, 0, width).view({1, width});
    auto valid = c < m[1];
    auto pos = (m[0] + c).clamp_max(T - 1);
    auto x = torch::where(valid, tokens.index({pos}), 0), y = torch::where(valid, tokens.index({pos + 1}), 0);
    auto at = m[2] + k_cols;  // (b, C): the chunk's columns; those past a row's window are masked
    auto sel = at.clamp_max(width - 1);
    auto in_chunk = at < m[1];
    auto nll = model.token_nll_at(x, y, sel);
    auto train_mask = (in_chunk & (m[3] > 0)).to(nll.scalar_type());
    auto xs = x.gather(1, sel), ys = y.gather(1, sel), ps = pos.gather(1, sel);
    if (!cfg.plant_update_before_score) record(xs, ys, ps, in_chunk, nll);
    if (profiler) profiler->mark("score (forward, head at the chunk)");
    if (any_train) {
      ledger.defer_check(ps, train_mask, ci, /*local=*/true);
      for (auto& p : opt.params()) p.param.mutable_grad() = torch::Tensor();
      ((nll * train_mask).sum(1) / static_cast<double>(C)).sum().backward();
      opt.step(1.0, 0);
      ledger.updated();
    }
    if (cfg.plant_update_before_score) record(xs, ys, ps, in_chunk, nll);
    if (profiler) profiler->mark("update (backward, AdamW)");
  }

  // Small host metadata to the device without a sync (pinned, asynchronous on CUDA).
  torch::Tensor to_device(const std::vector<int64_t>& v) const {
    auto t = torch::tensor(v, torch::kInt64);
    return ctx.device.is_cuda() ? t.pin_memory().to(ctx.device, /*non_blocking=*/true) : t;
  }

  void record(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& pos, const torch::Tensor& in_chunk,
              const torch::Tensor& nll) {
    torch::NoGradGuard g;
    auto w = in_chunk.to(torch::kFloat64);
    loss_sum += (nll.detach().to(torch::kFloat64) * w).sum();
    byte_sum += (bytes.target_bytes(x.reshape({-1}), y.reshape({-1}), (pos + 1).reshape({-1})).to(torch::kFloat64) *
                 w.reshape({-1})).sum();
    ledger.scored(pos, in_chunk);
  }

  // Global SGD on the base model over the first `boundary` documents in processing order (§9.3).
  void global_sgd(int64_t boundary, int64_t phase) {
    ledger.sync(0, T);
    std::vector<int64_t> span, used;  // the concatenated document tokens; the ledger entries they are targets of
    int64_t left = boundary;
    for (const auto& ids : batches)
      for (int64_t d : ids) {
        if (left-- <= 0) break;
        const Doc& doc = docs[static_cast<size_t>(d)];
        const int64_t* t = host.data_ptr<int64_t>() + doc.start;
        span.insert(span.end(), t, t + doc.pred_len + 1);  // includes the next BOS
        for (int64_t i = 0; i < doc.pred_len; ++i) used.push_back(doc.start + i);  // its leading BOS is the delimiter
      }
    auto used_t = torch::tensor(used, torch::kInt64).to(ctx.device);
    ledger.check_update(used_t, torch::ones_like(used_t), "global SGD after phase " + std::to_string(phase));
    auto all = torch::tensor(span, torch::kInt64);
    sgd_chunks(all);
  }

  void sgd_chunks(const torch::Tensor& all) {
    for (auto& p : base) p.set_requires_grad(true);
    model.train();
    torch::optim::SGD opt(base, torch::optim::SGDOptions(cfg.sgd_lr_).momentum(cfg.sgd_momentum_));
    const int64_t pairs = all.numel() - 1, L = cfg.sgd_seq_len_;
    const int64_t n = (pairs + cfg.sgd_chunk_ - 1) / cfg.sgd_chunk_;
    for (int64_t c = 0; c + 1 < n; ++c) {  // the last chunk is skipped
      const double lr = n > 1 ? cfg.sgd_lr_ * 0.5 * (1 + std::cos(M_PI * static_cast<double>(c) / static_cast<double>(n - 1))) : cfg.sgd_lr_;
      const int64_t a = c * cfg.sgd_chunk_, seqs = (std::min(pairs, a + cfg.sgd_chunk_) - a) / L;
      for (int64_t e = 0; e < cfg.sgd_epochs_; ++e)
        for (int64_t j0 = 0; j0 < seqs; j0 += cfg.sgd_batch_) sgd_step(all, a, j0, std::min(seqs, j0 + cfg.sgd_batch_), lr, opt);
    }
    model.eval();
    for (auto& p : base) {
      p.set_requires_grad(false);
      p.mutable_grad() = torch::Tensor();
    }
  }

  void sgd_step(const torch::Tensor& all, int64_t a, int64_t j0, int64_t j1, double lr, torch::optim::SGD& opt) {
    const int64_t L = cfg.sgd_seq_len_;
    const int64_t s0 = j0 + (j1 - j0) * ctx.rank() / ctx.world(), s1 = j0 + (j1 - j0) * (ctx.rank() + 1) / ctx.world();
    opt.zero_grad();
    if (s1 > s0) {
      const int64_t len = (s1 - s0) * L;
      auto row = all.slice(0, a + s0 * L, a + s0 * L + len + 1).contiguous();
      auto cu = packed_cu_seqlens(row.data_ptr<int64_t>(), len, cfg.bos_, L, cfg.cu_pad_).to(ctx.device);
      auto dev = row.to(ctx.device);
      model.loss(dev.slice(0, 0, len).view({1, len}), dev.slice(0, 1, len + 1).view({1, len}), cu, L).backward();
    }
    for (auto& p : base)
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    average_gradients(ctx.communicator(), base);
    if (cfg.sgd_clip_ > 0) clip_grad_norm(base, cfg.sgd_clip_);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);
    opt.step();
    ledger.updated();
  }

  const PhasedLoraTtt& cfg;
  LanguageModel& model;
  const EvalContext& ctx;
  const ByteCounter& bytes;
  torch::Tensor host, tokens;
  int64_t T;
  ScoreLedger ledger;
  at::Generator gen;
  std::vector<Doc> docs;
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> boundaries, ends;
  torch::Tensor loss_sum, byte_sum, cols, k_cols;
  Config adam;
  std::unique_ptr<StepProfiler> profiler;  // --profile with --eval-artifact: chunks kProfileFirst.. of the pass
  int64_t chunks_run = 0;
  int64_t scored = 0;
  std::vector<torch::Tensor> base;
  std::shared_ptr<BatchedLora> lora;
};

EvalResult PhasedLoraTtt::evaluate(LanguageModel& model, const ValStream& val, const ByteCounter& bytes,
                                   const EvalContext& ctx) const {
  Pass pass(*this, model, val, bytes, ctx);
  std::vector<torch::Tensor> saved;
  for (auto& p : pass.base) {
    saved.push_back(p.detach().clone());
    p.set_requires_grad(false);
  }
  const bool was_training = model.is_training();
  model.eval();
  const auto n = static_cast<int64_t>(pass.batches.size());
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  log::info(strf("phased_lora_ttt: %zu documents in %lld batches of up to %lld, %zu phases", pass.docs.size(),
                 static_cast<long long>(n), static_cast<long long>(doc_batch_), pass.ends.size() + 1));
  int64_t lo = 0;
  for (size_t k = 0; k <= pass.ends.size(); ++k) {
    const int64_t hi = k < pass.ends.size() ? pass.ends[k] : n;
    pass.score_batches(lo, hi, static_cast<int64_t>(k));
    // Progress per phase (the per-batch ledger check has synchronised, so the wall time is the device's).
    log::info(strf("phased_lora_ttt: phase %zu scored batches %lld-%lld, %lld tokens on this rank, %.1f s", k + 1,
                   static_cast<long long>(lo), static_cast<long long>(hi), static_cast<long long>(pass.scored), seconds()));
    lo = hi;
    if (k == pass.ends.size() || hi >= n) continue;  // no global update once nothing is left to score
    pass.lora.reset();                               // the next phase builds a new LoRA (fresh A)
    pass.global_sgd(pass.boundaries[k], static_cast<int64_t>(k));
    log::info(strf("phased_lora_ttt: global SGD after phase %zu on %lld documents, %.1f s", k + 1,
                   static_cast<long long>(pass.boundaries[k]), seconds()));
  }
  const EvalResult r = all_reduce_result(pass.loss_sum, static_cast<double>(pass.scored), pass.byte_sum, ctx);
  pass.ledger.finish(pass.T, false, "phased_lora_ttt");
  {
    torch::NoGradGuard g;
    for (size_t i = 0; i < saved.size(); ++i) pass.base[i].copy_(saved[i]);
  }
  for (auto& p : pass.base) p.set_requires_grad(true);
  if (was_training) model.train();
  return r;
}

namespace {

Schema schema() {
  return Schema()
      .integer("bos_id", kBosId, 0, 65535, "the token that starts every document")
      .integer("doc_batch", 64, 1, 1 << 16, "documents per batch (one LoRA slot each)")
      .integer("chunk", 48, 1, 1 << 20, "positions scored (then trained on) per step of each document")
      .integer("context", 2048, 1, 1 << 20, "at most this many tokens of the document's own text as context")
      .integer("rank", 96, 1, 4096, "LoRA rank r (#1693 96, #1855 80, #1938 96)")
      .number("alpha", 0.0, 0.0, 1e9, "LoRA scale alpha / r (0: scale 1, #1693; #1855 and #1938: 144)")
      .boolean("warm_start_a", false, "keep A across batches of a phase, resetting only B (#1855, #1938)")
      .boolean("k_lora", true, "adapt the k projection").boolean("o_lora", true, "adapt the out-projection")
      .boolean("mlp_lora", true, "a dim -> dim adapter beside the MLP")
      .number("lr", 1e-4, 0.0, 10.0, "AdamW learning rate of the adapters")
      .number("beta2", 0.999, 0.0, 1.0, "AdamW beta2 (beta1 0, eps 1e-10); #1855: 0.99")
      .number("weight_decay", 0.5, 0.0, 100.0, "AdamW decoupled weight decay (#1938: 1.0)")
      .integer("prefix_docs", 2000, 0, 1LL << 40, "P: documents the global SGD phases train on in all (#1855: 2500)")
      .integer("phases", 3, 0, 1000, "phase boundaries floor(P k / phases), k = 1..phases (#1938: 1)")
      .number("sgd_lr", 0.001, 0.0, 10.0, "global SGD learning rate (cosine over its chunks)")
      .number("sgd_momentum", 0.9, 0.0, 1.0, "global SGD momentum (a fresh optimizer per phase)")
      .number("sgd_grad_clip", 1.0, 0.0, 1e9, "global SGD gradient-norm clip (0 = off)")
      .integer("sgd_chunk_tokens", 32768, 1, 1LL << 40, "tokens per global SGD chunk (the last is skipped)")
      .integer("sgd_seq_len", 2048, 1, 1 << 20, "global SGD sequence length (whole sequences per chunk)")
      .integer("sgd_batch", 32, 1, 1 << 20, "global SGD sequences per step over all ranks")
      .integer("sgd_epochs", 1, 0, 1000, "global SGD passes per chunk")
      .integer("cu_seqlens_pad", 64, 1, 1 << 20, "pad the global SGD rows' cu_seqlens to a multiple of this")
      .integer("seed", 0, 0, 4294967295.0, "seeds the LoRA A draws (per phase and batch, so ranks agree)");
}

}  // namespace

PGOLF_REGISTER(
    EvaluatorRegistry, "phased_lora_ttt", schema(),
    [](const Config& c) -> std::shared_ptr<Evaluator> { return std::make_shared<PhasedLoraTtt>(c); },
    "per-document batched-LoRA TTT with phased global SGD (spec 9.3, 9.4; #1693, #1855, #1938)");

}  // namespace pgolf
