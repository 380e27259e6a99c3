// A tensor archive: named tensors plus a JSON meta in one deterministic byte string (same input -> same
// bytes), with a CRC-32 over all of it, so corruption that a check-less compressor (brotli, raw LZMA2, zstd
// frames) lets through is caught. The artifact's quantized state ("PGQS") and the checkpoint ("PGCK") are
// two formats of it, told apart by their magic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "framework/config.h"
#include "framework/named_state.h"

namespace pgolf {

struct ArchiveFormat {
  char magic[4];
  const char* kind;           // "quantized-state container", "checkpoint": named in every error
  const char* remedy;         // what to do about a damaged one
  const char* not_this_kind;  // what to check when the magic is wrong
};

// CRC-32 (IEEE, zlib's crc32) of n bytes.
uint32_t crc32(const char* data, size_t n);

std::string pack_archive(const ArchiveFormat& f, const NamedTensors& tensors, const Json& meta);
// Throws std::runtime_error naming `what` (the file) and the first field that is wrong.
void unpack_archive(const ArchiveFormat& f, const std::string& bytes, const std::string& what, NamedTensors* tensors,
                    Json* meta);

}  // namespace pgolf
