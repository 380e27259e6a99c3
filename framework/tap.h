// Taps: one mechanism by which code outside a model sees and changes what happens at named places of its
// forward pass, without knowing the model's classes. Every CastedLinear is a tap site (named by its module
// path, e.g. "blocks.3.attn.c_q"); models add TapPoints for named activations that are no linear's input
// (the final-norm output that feeds the tied head, ...). Uses:
//   fake quantisation (late QAT)   Tap::weight    replaces the weight a linear uses in its forward
//   activation capture (Hessians)  Tap::observe   sees the input of a site
//   adapters (TTT LoRA)            Tap::output    adds to the output of a site
// A model holds one TapSet; its sites are bound to it once, after the model is built
// (LanguageModel::bind_taps). With no tap installed a site costs one branch.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace pgolf {

// Where a tap fires. `weight` names the parameter this site's input multiplies (the linear's own weight,
// or "tok_emb.weight" at the tied head); empty for activations that feed no weight.
struct TapSite {
  std::string name;
  std::string weight;
  bool linear = false;  // a linear layer (Tap::weight applies), not a plain activation point
};

struct Tap {
  virtual ~Tap() = default;
  // Once at the start of every forward pass (so a tap can count the passes of recurrent layers).
  virtual void begin_forward() {}
  // The weight a linear site multiplies by in this forward (train or eval); `w` is the fp32 master.
  virtual torch::Tensor weight(const TapSite& /*site*/, const torch::Tensor& w, bool /*training*/) { return w; }
  // The site's input x (..., in), before the linear.
  virtual void observe(const TapSite& /*site*/, const torch::Tensor& /*x*/) {}
  // The site's output y given its input x; returns what the forward continues with.
  virtual torch::Tensor output(const TapSite& /*site*/, const torch::Tensor& /*x*/, const torch::Tensor& y) { return y; }
};

// The taps installed on one model, applied in the order they were added.
class TapSet {
 public:
  void add(std::shared_ptr<Tap> tap) { taps_.push_back(std::move(tap)); }
  void remove(const Tap* tap);
  bool empty() const { return taps_.empty(); }
  void begin_forward() const;
  torch::Tensor weight(const TapSite& site, torch::Tensor w, bool training) const;
  void observe(const TapSite& site, const torch::Tensor& x) const;
  torch::Tensor output(const TapSite& site, const torch::Tensor& x, torch::Tensor y) const;

 private:
  std::vector<std::shared_ptr<Tap>> taps_;
};

// Installs `tap` on `taps` for its lifetime (calibration, a TTT pass); removes it on every exit path.
class ScopedTap {
 public:
  ScopedTap(TapSet& taps, std::shared_ptr<Tap> tap) : taps_(taps), tap_(tap.get()) { taps_.add(std::move(tap)); }
  ~ScopedTap() { taps_.remove(tap_); }
  ScopedTap(const ScopedTap&) = delete;
  ScopedTap& operator=(const ScopedTap&) = delete;

 private:
  TapSet& taps_;
  const Tap* tap_;
};

// A module part that is a tap site. LanguageModel::bind_taps gives it its name and the model's TapSet.
class Tappable {
 public:
  virtual ~Tappable() = default;
  void bind_tap(TapSite site, const TapSet* taps) {
    site_ = std::move(site);
    taps_ = taps;
  }
  const TapSite& tap_site() const { return site_; }
  // The site of module path `module`: which parameter its input feeds, whether it is a linear layer.
  virtual TapSite site_at(const std::string& module) const = 0;
  // Some tap is installed (a fused path that bypasses this site must then take the site's own path).
  bool tapped() const { return taps_ != nullptr && !taps_->empty(); }

 protected:
  TapSite site_;
  const TapSet* taps_ = nullptr;
};

// A named activation that is no linear's input (e.g. the final-norm output feeding the tied head). It has no
// parameters, so registering it as a submodule changes no state-dict key.
struct TapPointImpl : torch::nn::Module, Tappable {
  explicit TapPointImpl(std::string weight = "") : weight_(std::move(weight)) {}
  // Observe x; returns x.
  torch::Tensor forward(const torch::Tensor& x) {
    if (tapped()) taps_->observe(site_, x);
    return x;
  }
  // The output y computed from x at this site (e.g. the head's logits from the final-norm output).
  torch::Tensor output(const torch::Tensor& x, const torch::Tensor& y) { return tapped() ? taps_->output(site_, x, y) : y; }
  TapSite site_at(const std::string& module) const override { return TapSite{module, weight_, false}; }

 private:
  std::string weight_;
};
TORCH_MODULE(TapPoint);

}  // namespace pgolf
