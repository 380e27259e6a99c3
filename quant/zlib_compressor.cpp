// zlib (RFC 1950 stream, deflate + Adler-32): the fallback compressor of #461 when zstandard is missing.
#include <zlib.h>

#include <algorithm>

#include "framework/artifact.h"
#include "quant/byte_shuffle.h"

namespace pgolf {
namespace {

class ZlibCompressor : public Compressor {
 public:
  ZlibCompressor(int level, bool shuffle) : level_(level), shuffle_(shuffle) {}

  std::string compress(const std::string& raw) const override {
    const std::string in = shuffle_for_codec(raw, shuffle_);
    uLongf cap = compressBound(static_cast<uLong>(in.size()));
    std::string out(cap, '\0');
    const int rc = compress2(reinterpret_cast<Bytef*>(out.data()), &cap, reinterpret_cast<const Bytef*>(in.data()),
                             static_cast<uLong>(in.size()), level_);
    if (rc != Z_OK) throw std::runtime_error("zlib compress failed (code " + std::to_string(rc) + ")");
    out.resize(cap);
    return out;
  }

  std::string decompress(const std::string& packed) const override {
    z_stream zs{};
    if (inflateInit(&zs) != Z_OK) throw std::runtime_error("zlib: inflateInit failed (out of memory?)");
    std::string out;
    char buf[1 << 16];
    size_t fed = 0;  // avail_in is 32-bit: feed the input in pieces
    int rc = Z_OK;
    while (rc == Z_OK) {
      if (zs.avail_in == 0 && fed < packed.size()) {
        const size_t n = std::min<size_t>(packed.size() - fed, size_t{1} << 30);
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(packed.data() + fed));
        zs.avail_in = static_cast<uInt>(n);
        fed += n;
      }
      zs.next_out = reinterpret_cast<Bytef*>(buf);
      zs.avail_out = sizeof(buf);
      rc = inflate(&zs, Z_NO_FLUSH);  // Z_BUF_ERROR here: no progress possible, i.e. the input ran out
      out.append(buf, sizeof(buf) - zs.avail_out);
    }
    const std::string msg = zs.msg ? zs.msg : "";
    const size_t left = zs.avail_in + (packed.size() - fed);
    inflateEnd(&zs);
    if (rc != Z_STREAM_END)
      throw std::runtime_error("zlib decompress: corrupt or truncated input" + (msg.empty() ? "" : " (" + msg + ")") +
                               "; the data is damaged or was written by another compressor (check artifact.compressor)");
    if (left != 0)
      throw std::runtime_error("zlib decompress: " + std::to_string(left) +
                               " trailing bytes after the end of the stream (corrupt input)");
    return byte_unshuffle(out);
  }

 private:
  int level_;
  bool shuffle_;
};

Schema zlib_schema() {
  Schema s;
  s.integer("level", 9, 0, 9, "deflate level (0 = store, 9 = smallest)")
      .boolean("byte_shuffle", false, "byte-shuffle (stride 2, \"BSHF\" header) before compressing");
  return s;
}

PGOLF_REGISTER(
    CompressorRegistry, "zlib", zlib_schema(),
    [](const Config& c) -> std::shared_ptr<Compressor> {
      return std::make_shared<ZlibCompressor>(static_cast<int>(c.i("level")), c.b("byte_shuffle"));
    },
    "zlib stream (deflate), levels 0-9");

}  // namespace
}  // namespace pgolf
