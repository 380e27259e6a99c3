// Training state: everything a step changes, captured and restored exactly (warmup rollback), and written
// to a checkpoint file (resume).
//
// A checkpoint file is a tensor archive of its own format ("PGCK", framework/tensor_archive.h: tensors + JSON
// meta, CRC-32 over all of it) with tensors named "model/<name>", "optim/<group>/<key>", "hook/<i>/<key>",
// "rng/cpu", "rng/cuda", and a meta object holding the loader position, the training hooks' meta and whatever
// the caller adds (step, training time, world size, the resolved recipe). It is written to a temporary file
// and renamed into place, so a process killed at any moment leaves either the previous checkpoint or the
// new one, never a torn file.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "framework/named_state.h"
#include "framework/training_hook.h"
#include "framework/loader.h"
#include "framework/model.h"
#include "framework/optimizer.h"

namespace pgolf {

struct TrainingState {
  NamedTensors model;                                             // parameters and buffers, by name
  std::vector<std::map<std::string, torch::Tensor>> optimizers;   // one per optim.groups entry
  std::vector<std::map<std::string, torch::Tensor>> hooks;        // one per train.hooks entry
  std::vector<Json> hook_meta;
  Json loader;
  torch::Tensor cpu_rng;   // torch's default CPU generator
  torch::Tensor cuda_rng;  // torch's default CUDA generator of the current device; undefined without CUDA
};

// The live objects a TrainingState describes.
struct TrainingParts {
  LanguageModel& model;
  const std::vector<std::shared_ptr<Optimizer>>& optimizers;
  TrainLoader& loader;
  const TrainingHooks& hooks;
};

// Copies (clones on the tensors' own devices: no host transfer) of everything in `parts`.
TrainingState capture_state(const TrainingParts& parts);
// Puts `state` back; throws std::runtime_error naming `what` and the first tensor or group that does not fit.
void restore_state(const TrainingParts& parts, const TrainingState& state, const std::string& what);

// Checkpoint file bytes and back. decode throws std::runtime_error naming `what` when the bytes are not a
// complete pgolf checkpoint of this format (damaged, truncated, another file).
std::string encode_checkpoint(const TrainingState& state, const Json& meta);
TrainingState decode_checkpoint(const std::string& bytes, const std::string& what, Json* meta);

// encode + write_file_atomic / read_file + decode.
void write_checkpoint(const std::string& path, const TrainingState& state, const Json& meta);
TrainingState read_checkpoint(const std::string& path, Json* meta);

// The first difference between two resolved recipes as "key.path: a vs b" ("" when equal).
std::string first_difference(const Json& a, const Json& b, const std::string& path = "");

}  // namespace pgolf
