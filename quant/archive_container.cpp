// The archive containers (posttrain §7.1, §7.2): the deterministic tensor archive (PGQS, CRC-32 over all of
// it) through one byte compressor. Three registrations of the one component:
//   archive   any registered compressor (the framework default: zlib level 9)
//   standard  #1755/#1693/#1938: byte shuffle stride 2 ("BSHF" + 2 + even bytes + odd bytes) -> brotli-11, lgwin 22
//   zstd22    #461: zstd level 22, no shuffle
#include "framework/artifact.h"

namespace pgolf {
namespace {

class ArchiveContainer : public Container {
 public:
  ArchiveContainer(std::shared_ptr<Compressor> c, std::string desc) : c_(std::move(c)), desc_(std::move(desc)) {}

  std::string pack(const QuantizedState& q) const override { return c_->compress(serialize_state(q)); }

  QuantizedState unpack(const std::string& bytes, const std::string& what) const override {
    if (bytes.size() >= 4 && bytes.compare(0, 4, "PGRP") == 0)
      throw std::runtime_error(what + ": a per-group (PGRP) artifact, but the container is " + desc_ +
                               " (set the write_artifact container to pergroup)");
    std::string raw;
    try {
      raw = c_->decompress(bytes);
    } catch (const std::exception& e) {
      throw std::runtime_error(what + ": not a readable " + desc_ + " artifact (truncated, damaged, or written by "
                               "another container): " + e.what());
    }
    return deserialize_state(raw, what);  // the archive's CRC-32 catches what the codec let through
  }

 private:
  std::shared_ptr<Compressor> c_;
  std::string desc_;
};

std::shared_ptr<Container> fixed(const Json& compressor, const std::string& desc, const Config& c) {
  return std::make_shared<ArchiveContainer>(make_compressor(compressor, c.key_path("compressor")), desc);
}

PGOLF_REGISTER(
    ContainerRegistry, "archive", Schema().component("compressor", "compressor", "zlib", "byte compressor of the archive"),
    [](const Config& c) -> std::shared_ptr<Container> {
      return std::make_shared<ArchiveContainer>(CompressorRegistry::get().build(c.sub("compressor")),
                                                "archive + " + c.sub("compressor").name());
    },
    "tensor archive (CRC-32) through the chosen compressor");

PGOLF_REGISTER(
    ContainerRegistry, "standard", Schema(),
    [](const Config& c) -> std::shared_ptr<Container> {
      return fixed(Json{{"name", "brotli"}, {"quality", 11}, {"lgwin", 22}, {"byte_shuffle", true}},
                   "standard (byte shuffle + brotli-11)", c);
    },
    "spec 7.1: tensor archive -> byte shuffle (stride 2, BSHF) -> brotli quality 11");
PGOLF_USES("container", "standard", "compressor", "brotli");

PGOLF_REGISTER(
    ContainerRegistry, "zstd22", Schema(),
    [](const Config& c) -> std::shared_ptr<Container> {
      return fixed(Json{{"name", "zstd"}, {"level", 22}}, "zstd-22", c);
    },
    "spec 7.2 (#461): tensor archive -> zstd level 22, no shuffle");
PGOLF_USES("container", "zstd22", "compressor", "zstd");

}  // namespace
}  // namespace pgolf
