// A test plugin that registers a name the trainer already has (mlp 'relu2'). It needs no torch: the
// duplicate check is by kind and name, whatever the registry's C++ type.
#include "framework/registry.h"

namespace {
struct SameKindAsMlp {
  static constexpr const char* kKind = "mlp";
};
using DupRegistry = pgolf::Registry<SameKindAsMlp>;
PGOLF_REGISTER(DupRegistry, "relu2", pgolf::Schema(),
               [](const pgolf::Config&) { return std::shared_ptr<SameKindAsMlp>(); }, "a second relu2");
}  // namespace
