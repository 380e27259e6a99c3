// LZMA2 through liblzma. format "xz" (default) is what Python's lzma.compress(data, preset=p) writes: an .xz
// stream with a CRC64 check, as #1755/#1693/#1938 do with COMPRESSOR=lzma. format "raw" is a bare LZMA2
// stream (no header, check or index: about 60 bytes smaller), as #1755 packs its code; decoding it needs
// the same preset, which the recipe supplies.
#include <lzma.h>

#include <algorithm>

#include "framework/artifact.h"
#include "quant/byte_shuffle.h"

namespace pgolf {
namespace {

std::string lzma_error(lzma_ret rc) {
  switch (rc) {
    case LZMA_MEM_ERROR: return "out of memory";
    case LZMA_MEMLIMIT_ERROR: return "memory limit reached";
    case LZMA_FORMAT_ERROR: return "not an .xz stream";
    case LZMA_OPTIONS_ERROR: return "unsupported options";
    case LZMA_DATA_ERROR: return "corrupt data";
    case LZMA_BUF_ERROR: return "truncated data";
    default: return "liblzma error " + std::to_string(static_cast<int>(rc));
  }
}

class LzmaCompressor : public Compressor {
 public:
  LzmaCompressor(uint32_t preset, bool raw, bool shuffle) : preset_(preset), raw_(raw), shuffle_(shuffle) {
    if (lzma_lzma_preset(&options_, preset_))
      throw std::runtime_error("lzma: liblzma rejects preset " + std::to_string(preset_ & LZMA_PRESET_LEVEL_MASK));
  }

  std::string compress(const std::string& raw) const override {
    const std::string in = shuffle_for_codec(raw, shuffle_);
    std::string out(lzma_stream_buffer_bound(in.size()), '\0');
    size_t pos = 0;
    const auto* src = reinterpret_cast<const uint8_t*>(in.data());
    auto* dst = reinterpret_cast<uint8_t*>(out.data());
    lzma_ret rc;
    if (raw_) {
      lzma_options_lzma opt = options_;
      const lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, nullptr}};
      rc = lzma_raw_buffer_encode(filters, nullptr, src, in.size(), dst, &pos, out.size());
    } else {
      rc = lzma_easy_buffer_encode(preset_, LZMA_CHECK_CRC64, nullptr, src, in.size(), dst, &pos, out.size());
    }
    if (rc != LZMA_OK) throw std::runtime_error("lzma compress failed: " + lzma_error(rc));
    out.resize(pos);
    return out;
  }

  std::string decompress(const std::string& packed) const override {
    lzma_stream strm = LZMA_STREAM_INIT;
    lzma_options_lzma opt = options_;
    const lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, nullptr}};
    lzma_ret rc = raw_ ? lzma_raw_decoder(&strm, filters) : lzma_stream_decoder(&strm, UINT64_MAX, 0);
    if (rc != LZMA_OK) throw std::runtime_error("lzma: cannot start the decoder: " + lzma_error(rc));
    strm.next_in = reinterpret_cast<const uint8_t*>(packed.data());
    strm.avail_in = packed.size();
    std::string out;
    uint8_t buf[1 << 16];
    do {
      strm.next_out = buf;
      strm.avail_out = sizeof(buf);
      rc = lzma_code(&strm, LZMA_FINISH);
      out.append(reinterpret_cast<char*>(buf), sizeof(buf) - strm.avail_out);
    } while (rc == LZMA_OK);
    const size_t left = strm.avail_in;
    lzma_end(&strm);
    if (rc != LZMA_STREAM_END)
      throw std::runtime_error("lzma decompress (" + std::string(raw_ ? "raw LZMA2" : "xz") + "): " + lzma_error(rc) +
                               "; the data is damaged or was written with another compressor, format or preset "
                               "(check artifact.compressor)");
    if (left != 0)
      throw std::runtime_error("lzma decompress: " + std::to_string(left) +
                               " trailing bytes after the end of the stream (corrupt input)");
    return byte_unshuffle(out);
  }

 private:
  uint32_t preset_;
  bool raw_;
  bool shuffle_;
  lzma_options_lzma options_{};
};

Schema lzma_schema() {
  Schema s;
  s.integer("preset", 6, 0, 9, "xz/LZMA2 preset (dictionary size and effort)")
      .boolean("extreme", false, "add LZMA_PRESET_EXTREME (slower, sometimes a little smaller)")
      .choice("format", "xz", {"xz", "raw"}, "xz: .xz stream with CRC64 (Python lzma.compress); raw: bare LZMA2")
      .boolean("byte_shuffle", false, "byte-shuffle (stride 2, \"BSHF\" header) before compressing");
  return s;
}

PGOLF_REGISTER(
    CompressorRegistry, "lzma", lzma_schema(),
    [](const Config& c) -> std::shared_ptr<Compressor> {
      const uint32_t preset = static_cast<uint32_t>(c.i("preset")) | (c.b("extreme") ? LZMA_PRESET_EXTREME : 0u);
      return std::make_shared<LzmaCompressor>(preset, c.s("format") == "raw", c.b("byte_shuffle"));
    },
    "LZMA2 (.xz stream or raw), presets 0-9 [+extreme]");

}  // namespace
}  // namespace pgolf
