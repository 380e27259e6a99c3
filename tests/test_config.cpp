#include <gtest/gtest.h>

#include "framework/config.h"

using pgolf::Json;
using pgolf::Schema;

TEST(Config, FillsDefaults) {
  Schema s;
  s.integer("layers", 9, 1, 64, "blocks").number("lr", 0.04, 0, 10, "lr");
  Json out = s.validate(Json{{"layers", 11}}, "model", "r.json");
  EXPECT_EQ(out["layers"].get<int>(), 11);
  EXPECT_DOUBLE_EQ(out["lr"].get<double>(), 0.04);
}
