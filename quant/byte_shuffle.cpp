#include "quant/byte_shuffle.h"

#include <stdexcept>

namespace pgolf {

namespace {
constexpr char kMagic[] = "BSHF";
constexpr size_t kMagicLen = 4;

bool has_magic(const std::string& s) { return s.size() >= kMagicLen && s.compare(0, kMagicLen, kMagic, kMagicLen) == 0; }
}  // namespace

std::string byte_shuffle(const std::string& raw, int stride) {
  if (stride < 1 || stride > 255)
    throw std::runtime_error("byte_shuffle: stride " + std::to_string(stride) + " is outside 1..255");
  const size_t n = raw.size(), s = static_cast<size_t>(stride);
  std::string out;
  out.reserve(kMagicLen + 1 + n);
  out.append(kMagic, kMagicLen);
  out.push_back(static_cast<char>(stride));
  for (size_t lane = 0; lane < s; ++lane)
    for (size_t i = lane; i < n; i += s) out.push_back(raw[i]);
  return out;
}

std::string byte_unshuffle(const std::string& data) {
  if (!has_magic(data)) return data;
  if (data.size() < kMagicLen + 1)
    throw std::runtime_error("byte_unshuffle: data begins with \"BSHF\" but has no stride byte (truncated payload)");
  const size_t s = static_cast<unsigned char>(data[kMagicLen]);
  if (s == 0) throw std::runtime_error("byte_unshuffle: \"BSHF\" header with stride 0 (corrupt payload)");
  const size_t n = data.size() - kMagicLen - 1;
  std::string out(n, '\0');
  size_t src = kMagicLen + 1;
  // Lane p holds offsets p, p+s, …: floor(n/s) bytes, plus one when p < n mod s.
  for (size_t lane = 0; lane < s; ++lane)
    for (size_t i = lane; i < n; i += s) out[i] = data[src++];
  return out;
}

std::string shuffle_for_codec(const std::string& raw, bool shuffle) {
  if (shuffle) return byte_shuffle(raw, 2);
  return has_magic(raw) ? byte_shuffle(raw, 1) : raw;
}

}  // namespace pgolf
