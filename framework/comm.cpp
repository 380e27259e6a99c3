#include "framework/comm.h"

#include <cstring>

namespace pgolf {

void Communicator::all_gather(std::vector<torch::Tensor>& out, const torch::Tensor& in) {
  torch::Tensor flat = torch::empty({static_cast<int64_t>(world()) * in.numel()}, in.options());
  all_gather_async(flat, in.reshape({-1}))->wait();
  out.clear();
  for (const auto& chunk : flat.chunk(world())) out.push_back(chunk.view(in.sizes()));
}

WorkHandle LocalCommunicator::reduce_scatter_async(torch::Tensor& out, const torch::Tensor& in, ReduceOp) {
  out.copy_(in.view(out.sizes()));
  return std::make_shared<DoneWork>();
}

WorkHandle LocalCommunicator::all_gather_async(torch::Tensor& out, const torch::Tensor& in) {
  out.copy_(in.view(out.sizes()));
  return std::make_shared<DoneWork>();
}

double agree_max(Communicator& comm, double local, const torch::Device& device) {
  if (comm.world() == 1) return local;
  auto t = torch::full({1}, local, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  comm.all_reduce_max(t);
  return t.item<double>();
}

bool agree_any(Communicator& comm, bool local, const torch::Device& device) {
  return agree_max(comm, local ? 1.0 : 0.0, device) > 0.5;
}

namespace {

torch::Tensor bytes_tensor(const std::string& s, int64_t n, const torch::Device& device) {
  auto t = torch::zeros({n}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
  return t.to(device);
}

std::string tensor_string(const torch::Tensor& t, int64_t n) {
  const auto host = t.cpu().contiguous();
  return std::string(reinterpret_cast<const char*>(host.data_ptr<uint8_t>()), static_cast<size_t>(n));
}

}  // namespace

std::string broadcast_string(Communicator& comm, const std::string& s, const torch::Device& device) {
  if (comm.world() == 1) return s;
  const auto n = static_cast<int64_t>(agree_max(comm, comm.rank() == 0 ? static_cast<double>(s.size()) : 0.0, device));
  torch::Tensor t = bytes_tensor(comm.rank() == 0 ? s : std::string(), std::max<int64_t>(n, 1), device);
  comm.broadcast(t, 0);
  return tensor_string(t, n);
}

std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& s, const torch::Device& device) {
  if (comm.world() == 1) return {s};
  auto len = torch::full({1}, static_cast<int64_t>(s.size()), torch::TensorOptions().dtype(torch::kInt64).device(device));
  std::vector<torch::Tensor> lens;
  comm.all_gather(lens, len);
  int64_t most = 1;
  for (const auto& l : lens) most = std::max(most, l.item<int64_t>());
  std::vector<torch::Tensor> parts;
  comm.all_gather(parts, bytes_tensor(s, most, device));
  std::vector<std::string> out;
  for (size_t r = 0; r < parts.size(); ++r) out.push_back(tensor_string(parts[r], lens[r].item<int64_t>()));
  return out;
}

}  // namespace pgolf
