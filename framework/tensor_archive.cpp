// The tensor archive. Layout (version 1), every integer little-endian:
//   magic (4 bytes) · u32 version · u64 meta length · meta (compact JSON) · u32 tensor count ·
//   per tensor: u32 name length · name · u8 dtype code · u8 ndim · u64 dims[ndim] · u64 byte count · raw bytes
//   (C order) · and last a u32 CRC-32 (IEEE) of everything before it.
// The CRC catches corruption that a check-less compressor (brotli, raw LZMA2, zstd frames) would let through.
#include "framework/tensor_archive.h"

#include <array>
#include <cstring>
#include <set>

namespace pgolf {

namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the container stores tensor bytes as the host lays them out");

constexpr uint32_t kVersion = 1;

// The dtype codes are part of the format: never renumber.
constexpr std::array<std::pair<uint8_t, torch::ScalarType>, 9> kDtypes = {{
    {1, torch::kFloat32}, {2, torch::kFloat16}, {3, torch::kBFloat16}, {4, torch::kInt8}, {5, torch::kUInt8},
    {6, torch::kInt16}, {7, torch::kInt32}, {8, torch::kInt64}, {9, torch::kBool}}};

template <class T>
void put(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF));
}

// Reads fields in order; every read names the field, so a truncated or damaged container says where.
class Reader {
 public:
  Reader(const std::string& bytes, size_t end, const std::string& what, const ArchiveFormat& f)
      : b_(bytes), end_(end), what_(what), f_(f) {}

  [[noreturn]] void fail(const std::string& problem) const {
    throw std::runtime_error(what_ + ": damaged " + f_.kind + ": " + problem + " (" + f_.remedy + ")");
  }
  const char* take(size_t n, const std::string& field) {
    if (n > end_ - pos_)
      fail("truncated: " + field + " needs " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
           " but only " + std::to_string(end_ - pos_) + " remain");
    const char* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }
  template <class T>
  T get(const std::string& field) {
    const char* p = take(sizeof(T), field);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
    return static_cast<T>(v);
  }
  size_t pos() const { return pos_; }
  size_t left() const { return end_ - pos_; }

 private:
  const std::string& b_;
  size_t end_, pos_ = 0;
  const std::string& what_;
  const ArchiveFormat& f_;
};

}  // namespace

uint32_t crc32(const char* data, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ static_cast<uint8_t>(data[i])) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string pack_archive(const ArchiveFormat& f, const NamedTensors& tensors, const Json& meta_json) {
  const std::string who = std::string("writing a ") + f.kind;
  std::string out(f.magic, 4);
  put<uint32_t>(out, kVersion);
  std::string meta;
  try {
    meta = meta_json.dump();
  } catch (const std::exception& e) {
    throw std::runtime_error(who + ": the meta cannot be written as JSON: " + e.what());
  }
  put<uint64_t>(out, meta.size());
  out += meta;
  if (tensors.size() > UINT32_MAX) throw std::runtime_error(who + ": too many tensors");
  put<uint32_t>(out, static_cast<uint32_t>(tensors.size()));
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    if (!seen.insert(name).second) throw std::runtime_error(who + ": tensor name '" + name + "' appears twice");
    if (!tensor.defined()) throw std::runtime_error(who + ": tensor '" + name + "' is undefined");
    const torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    uint8_t code = 0;
    for (const auto& [c, dt] : kDtypes)
      if (dt == t.scalar_type()) code = c;
    if (code == 0)
      throw std::runtime_error(who + ": tensor '" + name + "' has dtype " + std::string(c10::toString(t.scalar_type())) +
                               ", which the archive does not store (float32, float16, bfloat16, int8, uint8, int16, "
                               "int32, int64, bool); convert it first");
    if (name.size() > UINT32_MAX || t.dim() > 255) throw std::runtime_error(who + ": tensor '" + name + "' is too large to describe");
    put<uint32_t>(out, static_cast<uint32_t>(name.size()));
    out += name;
    put<uint8_t>(out, code);
    put<uint8_t>(out, static_cast<uint8_t>(t.dim()));
    for (int64_t d : t.sizes()) put<uint64_t>(out, static_cast<uint64_t>(d));
    const size_t nbytes = t.numel() * t.element_size();
    put<uint64_t>(out, nbytes);
    out.append(static_cast<const char*>(t.data_ptr()), nbytes);
  }
  put<uint32_t>(out, crc32(out.data(), out.size()));
  return out;
}

void unpack_archive(const ArchiveFormat& f, const std::string& bytes, const std::string& what, NamedTensors* tensors,
                    Json* meta_out) {
  if (bytes.size() < 4 || std::memcmp(bytes.data(), f.magic, 4) != 0)
    throw std::runtime_error(what + ": not a pgolf " + f.kind + " (it does not begin with \"" + std::string(f.magic, 4) +
                             "\"); " + f.not_this_kind);
  // Structure first (so truncation is reported as such), the checksum of the whole last.
  constexpr size_t kSmallest = 4 + 4 + 8 + 4 + 4;  // magic, version, meta length, count, checksum
  Reader r(bytes, bytes.size() - 4, what, f);        // the last 4 bytes are the checksum
  if (bytes.size() < kSmallest)
    r.fail("truncated: " + std::to_string(bytes.size()) + " bytes, the smallest container has " +
           std::to_string(kSmallest));
  r.take(4, "magic");
  const uint32_t version = r.get<uint32_t>("format version");
  if (version != kVersion)
    r.fail("format version " + std::to_string(version) + ", this build reads version " + std::to_string(kVersion));

  const uint64_t meta_len = r.get<uint64_t>("meta length");
  const char* meta = r.take(meta_len, "meta JSON");
  try {
    *meta_out = Json::parse(meta, meta + meta_len);
  } catch (const std::exception& e) {
    r.fail(std::string("meta is not valid JSON: ") + e.what());
  }

  const uint32_t count = r.get<uint32_t>("tensor count");
  std::set<std::string> seen;
  for (uint32_t i = 0; i < count; ++i) {
    const std::string at = "tensor " + std::to_string(i);
    const uint32_t name_len = r.get<uint32_t>(at + " name length");
    const char* name_p = r.take(name_len, at + " name");
    std::string name(name_p, name_len);
    const std::string tn = at + " ('" + name + "')";
    if (!seen.insert(name).second) r.fail(tn + " appears twice");
    const uint8_t code = r.get<uint8_t>(tn + " dtype");
    torch::ScalarType dtype = torch::kFloat32;
    bool known = false;
    for (const auto& [c, dt] : kDtypes)
      if (c == code) dtype = dt, known = true;
    if (!known) r.fail(tn + " has unknown dtype code " + std::to_string(code));
    const uint8_t ndim = r.get<uint8_t>(tn + " rank");
    std::vector<int64_t> shape(ndim);
    const size_t elem = c10::elementSize(dtype);
    uint64_t max_numel = r.left() / elem, numel = 1;  // no shape may claim more bytes than the file holds
    for (uint8_t d = 0; d < ndim; ++d) {
      const uint64_t dim = r.get<uint64_t>(tn + " dimension " + std::to_string(d));
      if (dim > static_cast<uint64_t>(INT64_MAX)) r.fail(tn + " has an impossible dimension");
      shape[d] = static_cast<int64_t>(dim);
      if (dim != 0 && numel > max_numel / dim) r.fail("truncated or damaged: " + tn + " claims more data than the file holds");
      numel *= dim;
    }
    const uint64_t nbytes = r.get<uint64_t>(tn + " byte count");
    if (nbytes != numel * elem)
      r.fail(tn + " byte count " + std::to_string(nbytes) + " does not match its shape and dtype (" +
             std::to_string(numel * elem) + " bytes)");
    const char* data = r.take(nbytes, tn + " data");
    torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    if (nbytes) std::memcpy(t.data_ptr(), data, nbytes);
    if (dtype == torch::kBool)
      for (uint64_t k = 0; k < nbytes; ++k)
        if (static_cast<uint8_t>(data[k]) > 1) r.fail(tn + " holds a bool byte that is neither 0 nor 1");
    tensors->emplace_back(std::move(name), std::move(t));
  }
  if (r.left() != 0) r.fail(std::to_string(r.left()) + " unexpected bytes after the last tensor");
  Reader tail(bytes, bytes.size(), what, f);  // r stopped 4 bytes short of the end: the checksum follows
  tail.take(r.pos(), "body");
  if (tail.get<uint32_t>("checksum") != crc32(bytes.data(), r.pos())) r.fail("checksum mismatch (the bytes were altered)");
}

}  // namespace pgolf
