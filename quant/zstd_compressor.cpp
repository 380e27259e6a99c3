// Zstandard single frame (content size in the header, no checksum), as #461 wrote its artifact at level 22.
#include <zstd.h>

#include <memory>

#include "framework/artifact.h"
#include "quant/byte_shuffle.h"

namespace pgolf {
namespace {

class ZstdCompressor : public Compressor {
 public:
  ZstdCompressor(int level, bool shuffle) : level_(level), shuffle_(shuffle) {}

  std::string compress(const std::string& raw) const override {
    const std::string in = shuffle_for_codec(raw, shuffle_);
    std::string out(ZSTD_compressBound(in.size()), '\0');
    const size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), level_);
    if (ZSTD_isError(n)) throw std::runtime_error(std::string("zstd compress failed: ") + ZSTD_getErrorName(n));
    out.resize(n);
    return out;
  }

  std::string decompress(const std::string& packed) const override {
    if (packed.empty()) throw std::runtime_error("zstd decompress: empty input (expected a zstd frame)");
    std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!dctx) throw std::runtime_error("zstd: cannot create a decompression context (out of memory?)");
    // Streaming, so a corrupt header's content size never decides an allocation.
    ZSTD_inBuffer in{packed.data(), packed.size(), 0};
    std::string out;
    std::string buf(ZSTD_DStreamOutSize(), '\0');
    size_t ret = 1;
    while (true) {
      ZSTD_outBuffer o{buf.data(), buf.size(), 0};
      ret = ZSTD_decompressStream(dctx.get(), &o, &in);
      if (ZSTD_isError(ret))
        throw std::runtime_error(std::string("zstd decompress: corrupt input (") + ZSTD_getErrorName(ret) +
                                 "); the data is damaged or was written by another compressor (check artifact.compressor)");
      out.append(buf.data(), o.pos);
      // Done when every input byte is used and the last frame is complete and flushed (ret == 0).
      if (in.pos == in.size && (ret == 0 || o.pos < o.size)) break;
    }
    if (ret != 0) throw std::runtime_error("zstd decompress: truncated input (the last frame is incomplete)");
    return byte_unshuffle(out);
  }

 private:
  int level_;
  bool shuffle_;
};

Schema zstd_schema() {
  Schema s;
  s.integer("level", 22, 1, 22, "compression level (levels 20-22 are zstd's 'ultra' levels)")
      .boolean("byte_shuffle", false, "byte-shuffle (stride 2, \"BSHF\" header) before compressing");
  return s;
}

PGOLF_REGISTER(
    CompressorRegistry, "zstd", zstd_schema(),
    [](const Config& c) -> std::shared_ptr<Compressor> {
      return std::make_shared<ZstdCompressor>(static_cast<int>(c.i("level")), c.b("byte_shuffle"));
    },
    "Zstandard frame, levels 1-22");

}  // namespace
}  // namespace pgolf
