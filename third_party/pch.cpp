// Translation unit that carries the shared precompiled header (torch/torch.h, nlohmann/json.hpp).
