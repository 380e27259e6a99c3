// "none" for every optional kind: the factory returns nullptr and the owner leaves that step out, so any
// of these components is switched off by one recipe key ({"name": "none"}).
#include "models/components.h"

namespace pgolf {
namespace {

template <class T, class... Args>
typename Registry<T, Args...>::Factory nothing() {
  return [](const Config&, Args...) -> std::shared_ptr<T> { return nullptr; };
}

PGOLF_REGISTER(AttentionGateRegistry, "none", Schema(), (nothing<AttentionGate, const LayerContext&>()),
               "no output gate");
PGOLF_REGISTER(SmearRegistry, "none", Schema(), (nothing<Smear, const LayerContext&>()), "no SmearGate");
PGOLF_REGISTER(BigramRegistry, "none", Schema(), (nothing<Bigram, const LayerContext&>()), "no bigram embedding");
PGOLF_REGISTER(ValueEmbeddingRegistry, "none", Schema(), (nothing<ValueEmbedding, const LayerContext&>()),
               "no value embeddings");
PGOLF_REGISTER(LaneRegistry, "none", Schema(), (nothing<LaneMixer, const LayerContext&>()),
               "a single residual stream throughout");
PGOLF_REGISTER(SkipRegistry, "none", Schema(), (nothing<SkipConnection, const SkipContext&>()),
               "no U-Net skips (encoder outputs are dropped)");

}  // namespace
}  // namespace pgolf
