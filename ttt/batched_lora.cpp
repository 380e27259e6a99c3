#include "ttt/batched_lora.h"

#include <cmath>
#include <stdexcept>

namespace pgolf {
namespace {

enum class Site { None, Q, K, V, O, MlpIn, MlpOut, Head };

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

Site site_of(const std::string& name) {
  if (ends_with(name, "attn.c_q")) return Site::Q;
  if (ends_with(name, "attn.c_k")) return Site::K;
  if (ends_with(name, "attn.c_v")) return Site::V;
  if (ends_with(name, "attn.proj")) return Site::O;
  if (ends_with(name, "mlp.fc")) return Site::MlpIn;
  if (ends_with(name, "mlp.proj")) return Site::MlpOut;
  if (name == "head") return Site::Head;
  return Site::None;
}

// Walks the virtual layers of one forward: a layer begins when an attention site fires a second time.
struct LayerWalk {
  int64_t layer = -1;
  std::array<bool, BatchedLora::kKinds> seen{};
  void visit(int kind) {
    if (layer < 0 || seen[static_cast<size_t>(kind)]) {
      ++layer;
      seen.fill(false);
    }
    seen[static_cast<size_t>(kind)] = true;
  }
};

int kind_of(Site s) {
  switch (s) {
    case Site::Q: return BatchedLora::Q;
    case Site::K: return BatchedLora::K;
    case Site::V: return BatchedLora::V;
    case Site::O: return BatchedLora::O;
    default: return -1;
  }
}

// One forward's sites: per virtual layer the (in, out) of each adapter; the head's too.
struct Probe : Tap {
  std::vector<std::array<std::pair<int64_t, int64_t>, BatchedLora::kKinds>> dims;
  std::pair<int64_t, int64_t> head{0, 0};
  LayerWalk walk;
  int64_t dim = 0;
  torch::Tensor output(const TapSite& site, const torch::Tensor& x, const torch::Tensor& y) override {
    const Site s = site_of(site.name);
    if (s == Site::Head) head = {x.size(-1), y.size(-1)};
    if (const int k = kind_of(s); k >= 0) {
      walk.visit(k);
      if (static_cast<int64_t>(dims.size()) <= walk.layer) dims.emplace_back();
      if (k != BatchedLora::O) dim = x.size(-1);  // n, the block's normed input
      dims.back()[static_cast<size_t>(k)] = {k == BatchedLora::O ? dim : x.size(-1), y.size(-1)};  // o reads n
    }
    if (s == Site::MlpOut && !dims.empty()) dims.back()[BatchedLora::MLP] = {y.size(-1), y.size(-1)};
    return y;
  }
};

}  // namespace

BatchedLora::BatchedLora(LanguageModel& model, int64_t batch, const LoraOptions& opt, torch::Device device)
    : batch_(batch), opt_(opt) {
  auto probe = std::make_shared<Probe>();
  {
    ScopedTap scoped(model.taps(), probe);
    torch::NoGradGuard g;
    auto x = torch::zeros({1, 2}, torch::TensorOptions().dtype(torch::kInt64).device(device));
    model.token_nll(x, x);
  }
  if (probe->dims.empty()) throw std::runtime_error("batched LoRA: the model has no attention projections to adapt");
  const std::array<bool, kKinds> on = {opt.q, opt.k, opt.v, opt.o, opt.mlp};
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto make = [&](std::pair<int64_t, int64_t> io) {
    return Adapter{torch::zeros({batch, opt.rank, io.first}, f32).requires_grad_(),
                   torch::zeros({batch, io.second, opt.rank}, f32).requires_grad_()};
  };
  for (const auto& d : probe->dims) {
    Layer l;
    for (int k = 0; k < kKinds; ++k)
      if (on[static_cast<size_t>(k)] && d[static_cast<size_t>(k)].first > 0) l[static_cast<size_t>(k)] = make(d[static_cast<size_t>(k)]);
    layers_.push_back(l);
  }
  if (opt.head && probe->head.first > 0) head_ = make(probe->head);
}

void BatchedLora::reset(bool redraw_a, at::Generator& gen) {
  torch::NoGradGuard g;
  auto each = [&](Adapter& a) {
    if (!a.a.defined()) return;
    a.b.zero_();
    if (!redraw_a) return;
    const double bound = 1.0 / std::sqrt(static_cast<double>(a.a.size(2)));
    a.a.copy_(torch::rand(a.a.sizes(), gen, torch::kFloat32) * (2 * bound) - bound);
  };
  for (auto& l : layers_)
    for (auto& a : l) each(a);
  each(head_);
}

std::vector<torch::Tensor> BatchedLora::parameters() const {
  std::vector<torch::Tensor> out;
  auto add = [&](const Adapter& a) {
    if (a.a.defined()) out.insert(out.end(), {a.a, a.b});
  };
  for (const auto& l : layers_)
    for (const auto& a : l) add(a);
  add(head_);
  return out;
}

int64_t BatchedLora::parameters_per_document() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel() / batch_;
  return n;
}

torch::Tensor BatchedLora::Adapter::delta(const torch::Tensor& x, double scale) const {
  const auto dt = x.scalar_type();
  auto flat = x.reshape({x.size(0), -1, x.size(-1)});
  auto d = torch::bmm(torch::bmm(flat, a.to(dt).transpose(1, 2)), b.to(dt).transpose(1, 2));
  if (scale != 1.0) d = d * scale;
  auto shape = x.sizes().vec();
  shape.back() = b.size(1);
  return d.view(shape);
}

void BatchedLora::begin_forward() {
  layer_ = -1;
  seen_.fill(false);
}

torch::Tensor BatchedLora::output(const TapSite& site, const torch::Tensor& x, const torch::Tensor& y) {
  const Site s = site_of(site.name);
  if (s == Site::None) return y;
  if (x.size(0) != batch_)
    throw std::runtime_error("batched LoRA: a forward of " + std::to_string(x.size(0)) + " rows on adapters for " +
                             std::to_string(batch_) + " documents");
  if (s == Site::Head) return head_.a.defined() ? y + head_.delta(x, opt_.scale) : y;
  if (s == Site::MlpIn) {
    mlp_in_ = x;
    return y;
  }
  if (s == Site::MlpOut) {
    const Adapter& a = layers_.at(static_cast<size_t>(std::max<int64_t>(layer_, 0)))[MLP];
    return a.a.defined() && mlp_in_.defined() ? y + a.delta(mlp_in_, opt_.scale) : y;
  }
  const int k = kind_of(s);
  if (layer_ < 0 || seen_[static_cast<size_t>(k)]) {
    ++layer_;
    seen_.fill(false);
  }
  seen_[static_cast<size_t>(k)] = true;
  if (layer_ >= virtual_layers()) throw std::runtime_error("batched LoRA: more virtual layers than the probe forward had");
  if (k != O) block_in_ = x;
  const Adapter& a = layers_[static_cast<size_t>(layer_)][static_cast<size_t>(k)];
  if (!a.a.defined()) return y;
  return y + a.delta(k == O ? block_in_ : x, opt_.scale);
}

}  // namespace pgolf
