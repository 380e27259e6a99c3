// Muon (spec §4.2): momentum SGD whose update is orthogonalised by Newton–Schulz, per matrix. 2-D
// parameters are one matrix; 3-D "banked" parameters (B, rows, cols) are B matrices updated independently.
// Matrices of the same shape are orthogonalised together as one batch (one bank per shape), which is the
// same arithmetic per matrix in a handful of batched GEMMs instead of a few per matrix. With several ranks
// each rank orthogonalises its share of every batch and the results are all-gathered (parallel Muon).
#include <algorithm>
#include <cmath>

#include "framework/optimizer.h"
#include "optim/newton_schulz.h"

namespace pgolf {
namespace {

torch::ScalarType dtype_of(const std::string& s) { return s == "bf16" ? torch::kBFloat16 : torch::kFloat32; }

class Muon : public Optimizer {
 public:
  Muon(const Config& c, const OptimizerContext& ctx)
      : lr_(c.f("lr")),
        momentum_(c.f("momentum")),
        warmup_start_(c.f("momentum_warmup_start")),
        warmup_steps_(c.i("momentum_warmup_steps")),
        nesterov_(c.b("nesterov")),
        backend_steps_(c.i("backend_steps")),
        coefficients_(ns_coefficients(c.s("coefficients"))),
        row_normalize_(c.b("row_normalize")),
        weight_decay_(c.f("weight_decay")),
        ns_dtype_(dtype_of(c.s("ns_dtype"))),
        momentum_dtype_(dtype_of(c.s("momentum_dtype"))) {
    params_ = ctx.params;
    comm_ = ctx.comm;
    for (const auto& p : params_) {
      if (p.param.dim() != 2 && p.param.dim() != 3)
        throw ConfigError(c.key_path("params") + ": muon updates matrices (2-D) or banks of matrices (3-D), but '" +
                          p.name + "' has " + std::to_string(p.param.dim()) +
                          " dimensions; set params.min_ndim/max_ndim to 2 (or 3) or send it to an adam group");
      bufs_.push_back(torch::zeros_like(p.param, p.param.options().dtype(momentum_dtype_)));
      // 2-D matrices of one shape share a Newton-Schulz batch; a 3-D bank is a batch of its own.
      if (p.param.dim() == 2) {
        auto it = std::find_if(batches_.begin(), batches_.end(), [&](const std::vector<size_t>& b) {
          const auto& q = params_[b.front()].param;
          return q.dim() == 2 && q.sizes() == p.param.sizes() && q.device() == p.param.device();
        });
        if (it != batches_.end()) {
          it->push_back(bufs_.size() - 1);
          continue;
        }
      }
      batches_.push_back({bufs_.size() - 1});
    }
  }

  // μ(step) = (1 − f)·start + f·momentum, f = min(step / warmup_steps, 1) (spec §3.5).
  double momentum_at(int64_t step) const {
    const double f = warmup_steps_ > 0 ? std::min(static_cast<double>(step) / warmup_steps_, 1.0) : 1.0;
    return (1.0 - f) * warmup_start_ + f * momentum_;
  }

  void step(double lr_scale, int64_t step) override {
    torch::NoGradGuard no_grad;
    const double lr = lr_ * lr_scale, mu = momentum_at(step);
    std::vector<Pending> pending;
    for (const auto& batch : batches_) {
      std::vector<size_t> live;  // a parameter not in this step's graph keeps its weight and momentum
      std::vector<torch::Tensor> updates;
      for (size_t i : batch) {
        const torch::Tensor g = params_[i].param.grad();
        if (!g.defined()) continue;
        torch::Tensor& buf = bufs_[i];
        buf.mul_(mu).add_(g.to(momentum_dtype_));
        updates.push_back(nesterov_ ? g.to(momentum_dtype_).add(buf, mu) : buf);
        live.push_back(i);
      }
      if (live.empty()) continue;
      const torch::Tensor u = live.size() == 1 ? updates[0] : torch::stack(updates);
      if (sharded()) pending.push_back(orthogonalise_shard(u, std::move(live)));
      else apply(live, orthogonalise(u), lr);
    }
    for (auto& p : pending) {  // every gather was launched before the first wait: they overlap the NS work
      p.work->wait();
      apply(p.live, p.gathered.narrow(0, 0, p.count).view(p.shape), lr);
    }
  }

  double base_lr() const override { return lr_; }

  // Parallel Muon (spec §4.3): rank r orthogonalises matrices [r·k, (r+1)·k) of each same-shape batch
  // (k = ⌈n/world⌉, zero-padded: a zero matrix stays zero), and an all-gather gives every rank every result,
  // so each applies the same update while the Newton-Schulz work divides by the world size.
  struct Pending {
    std::vector<size_t> live;
    torch::Tensor gathered;
    int64_t count;
    std::vector<int64_t> shape;
    WorkHandle work;
  };

  bool sharded() const { return comm_ && comm_->collective() && comm_->world() > 1; }

  torch::Tensor orthogonalise(torch::Tensor u) const {
    if (row_normalize_)  // MuonEq-R: every row to unit L2 norm before orthogonalising
      u = u / torch::linalg_vector_norm(u, 2, {-1}, /*keepdim=*/true).clamp_min(1e-7);
    return zeropower(u, backend_steps_, coefficients_, ns_dtype_);
  }

  Pending orthogonalise_shard(const torch::Tensor& u, std::vector<size_t> live) const {
    const torch::Tensor u3 = u.dim() == 2 ? u.unsqueeze(0) : u;
    const int64_t n = u3.size(0), world = comm_->world(), k = (n + world - 1) / world;
    const int64_t first = std::min(n, comm_->rank() * k), last = std::min(n, first + k);
    torch::Tensor mine = torch::zeros({k, u3.size(1), u3.size(2)}, u3.options());
    if (last > first) mine.narrow(0, 0, last - first).copy_(u3.narrow(0, first, last - first));
    const torch::Tensor x = orthogonalise(mine).contiguous();
    Pending p{std::move(live), torch::empty({world * k, u3.size(1), u3.size(2)}, x.options()), n, u.sizes().vec(), nullptr};
    p.work = comm_->all_gather_async(p.gathered, x);
    return p;
  }

  void apply(const std::vector<size_t>& live, const torch::Tensor& x, double lr) {
    for (size_t j = 0; j < live.size(); ++j) {
      torch::Tensor p = params_[live[j]].param;
      const double s = std::sqrt(std::max(1.0, static_cast<double>(p.size(-2)) / static_cast<double>(p.size(-1))));
      if (weight_decay_ != 0) p.mul_(1.0 - lr * weight_decay_);  // decoupled, with the scheduled lr
      p.add_((live.size() == 1 ? x : x[j]).to(p.scalar_type()), -lr * s);
    }
  }

  std::map<std::string, torch::Tensor> state() const override {
    std::map<std::string, torch::Tensor> out;
    for (size_t i = 0; i < params_.size(); ++i) out[key(i)] = bufs_[i].detach().clone();
    return out;
  }

  void load_state(const std::map<std::string, torch::Tensor>& state) override {
    if (state.size() != params_.size())
      throw std::runtime_error("muon load_state: got " + std::to_string(state.size()) + " tensors, expected " +
                               std::to_string(params_.size()) + " momentum buffers (one per parameter)");
    for (size_t i = 0; i < params_.size(); ++i) {
      auto it = state.find(key(i));
      if (it == state.end()) throw std::runtime_error("muon load_state: missing '" + key(i) + "'");
      if (!it->second.sizes().equals(bufs_[i].sizes()))
        throw std::runtime_error("muon load_state: '" + key(i) + "' has the wrong shape");
      torch::NoGradGuard no_grad;
      bufs_[i].copy_(it->second);
    }
  }

 private:
  std::string key(size_t i) const { return params_[i].name + ".momentum_buffer"; }

  double lr_, momentum_, warmup_start_;
  int64_t warmup_steps_;
  bool nesterov_;
  int64_t backend_steps_;
  std::vector<NsCoefficients> coefficients_;
  bool row_normalize_;
  double weight_decay_;
  torch::ScalarType ns_dtype_, momentum_dtype_;
  std::vector<torch::Tensor> bufs_;
  std::vector<std::vector<size_t>> batches_;  // indices into params_, orthogonalised together
};

Schema muon_schema() {
  Schema s = optimizer_common_schema(0.04);
  s.number("momentum", 0.95, 0.0, 1.0, "momentum after the warmup")
      .number("momentum_warmup_start", 0.85, 0.0, 1.0, "momentum at step 0, rising linearly to `momentum`")
      .integer("momentum_warmup_steps", 500, 0, 1e12, "steps of the momentum warmup (0 = none)")
      .boolean("nesterov", true, "Nesterov momentum: orthogonalise G + momentum*buf instead of buf")
      .integer("backend_steps", 5, 0, 100, "Newton-Schulz iterations")
      .choice("coefficients", "quintic", {"quintic", "polar_express"}, "Newton-Schulz polynomial coefficients")
      .boolean("row_normalize", false, "MuonEq-R: scale each row of the update to unit norm before Newton-Schulz")
      .number("weight_decay", 0.0, 0.0, 1e6, "decoupled weight decay: theta *= 1 - lr*wd before the update")
      .choice("ns_dtype", "bf16", {"bf16", "fp32"}, "dtype Newton-Schulz computes in")
      .choice("momentum_dtype", "fp32", {"fp32", "bf16"}, "dtype of the momentum buffer");
  return s;
}

PGOLF_REGISTER(
    OptimizerRegistry, "muon", muon_schema(),
    [](const Config& c, const OptimizerContext& ctx) -> std::shared_ptr<Optimizer> {
      return std::make_shared<Muon>(c, ctx);
    },
    "Muon: Nesterov momentum orthogonalised by Newton-Schulz (quintic or Polar Express), per matrix or bank slice");

}  // namespace
}  // namespace pgolf
