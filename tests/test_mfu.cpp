// MFU inputs: the model FLOPs per token of small GPTs counted by hand (torchtitan's convention: 6 per
// matmul weight per pass, the looped passes counted, plus 12·d·T per attention layer run), and the peak
// table by device name.
#include <gtest/gtest.h>

#include "framework/device.h"
#include "tests/component_testing.h"

namespace pgolf {
namespace {

TEST(Mfu, FlopsPerTokenByHand) {
  // 3 blocks of d = 16, 2 heads of 8, 1 kv head: q 16·16 + k 16·8 + v 16·8 + o 16·16 = 768; relu² MLP ×2:
  // 16·32 + 32·16 = 1024. Tied head 40·16 = 640. T = 64.
  auto m = testing::build_model(Json{{"name", "gpt"}, {"vocab_size", 40}, {"layers", 3}, {"dim", 16}, {"heads", 2}, {"kv_heads", 1}});
  EXPECT_DOUBLE_EQ(m->flops_per_token(64), 6.0 * (3 * (768 + 1024) + 640) + 12.0 * 3 * 16 * 64);
}

TEST(Mfu, LoopedPassesCount) {
  // 11 blocks, LeakyReLU² ×4 (16·64 + 64·16 = 2048 + 768 attention per block); the segment loop of layers
  // 3-5 run 3 times adds 6 passes once it is on.
  auto m = testing::build_model(Json{{"name", "gpt"}, {"vocab_size", 40}, {"layers", 11}, {"dim", 16}, {"heads", 2},
                                     {"kv_heads", 1}, {"mlp", {{"name", "leaky_relu2"}}}, {"skip", "unet_gated"},
                                     {"recurrence", {{"name", "segment_loop"}}}});
  m->train();
  EXPECT_DOUBLE_EQ(m->flops_per_token(64), 6.0 * (11 * 2816 + 640) + 12.0 * 11 * 16 * 64);
  m->on_train_progress(1.0);
  EXPECT_DOUBLE_EQ(m->flops_per_token(64), 6.0 * (17 * 2816 + 640) + 12.0 * 17 * 16 * 64);
}

TEST(Mfu, PeakByDeviceName) {
  EXPECT_DOUBLE_EQ(peak_bf16_flops_of("NVIDIA H200"), 989e12);
  EXPECT_DOUBLE_EQ(peak_bf16_flops_of("NVIDIA H100 80GB HBM3"), 989e12);
  EXPECT_DOUBLE_EQ(peak_bf16_flops_of("NVIDIA H100 PCIe"), 756e12);
  EXPECT_DOUBLE_EQ(peak_bf16_flops_of("Tesla T4"), 0.0);
}

}  // namespace
}  // namespace pgolf
