// Brotli (generic mode), as #1755/#1693/#1938 write their artifact: quality 11, window 2^22. Registered only
// where the build found libbrotli (PGOLF_HAVE_BROTLI, see third_party/cmake/FindBrotli.cmake).
#ifdef PGOLF_HAVE_BROTLI
#include <brotli/decode.h>
#include <brotli/encode.h>

#include <memory>

#include "framework/artifact.h"
#include "quant/byte_shuffle.h"

namespace pgolf {
namespace {

class BrotliCompressor : public Compressor {
 public:
  BrotliCompressor(int quality, int lgwin, bool shuffle) : quality_(quality), lgwin_(lgwin), shuffle_(shuffle) {}

  std::string compress(const std::string& raw) const override {
    const std::string in = shuffle_for_codec(raw, shuffle_);
    size_t n = BrotliEncoderMaxCompressedSize(in.size());
    if (n == 0) throw std::runtime_error("brotli compress: input of " + std::to_string(in.size()) + " bytes is too large");
    std::string out(n, '\0');
    if (!BrotliEncoderCompress(quality_, lgwin_, BROTLI_MODE_GENERIC, in.size(),
                               reinterpret_cast<const uint8_t*>(in.data()), &n, reinterpret_cast<uint8_t*>(out.data())))
      throw std::runtime_error("brotli compress failed");
    out.resize(n);
    return out;
  }

  std::string decompress(const std::string& packed) const override {
    std::unique_ptr<BrotliDecoderState, void (*)(BrotliDecoderState*)> dec(
        BrotliDecoderCreateInstance(nullptr, nullptr, nullptr), BrotliDecoderDestroyInstance);
    if (!dec) throw std::runtime_error("brotli: cannot create a decoder (out of memory?)");
    size_t avail_in = packed.size();
    const auto* next_in = reinterpret_cast<const uint8_t*>(packed.data());
    std::string out;
    uint8_t buf[1 << 16];
    BrotliDecoderResult r;
    do {
      size_t avail_out = sizeof(buf);
      uint8_t* next_out = buf;
      r = BrotliDecoderDecompressStream(dec.get(), &avail_in, &next_in, &avail_out, &next_out, nullptr);
      out.append(reinterpret_cast<char*>(buf), sizeof(buf) - avail_out);
    } while (r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT);
    if (r == BROTLI_DECODER_RESULT_ERROR)
      throw std::runtime_error(std::string("brotli decompress: corrupt input (") +
                               BrotliDecoderErrorString(BrotliDecoderGetErrorCode(dec.get())) +
                               "); the data is damaged or was written by another compressor (check artifact.compressor)");
    if (r != BROTLI_DECODER_RESULT_SUCCESS) throw std::runtime_error("brotli decompress: truncated input");
    if (avail_in != 0)
      throw std::runtime_error("brotli decompress: " + std::to_string(avail_in) +
                               " trailing bytes after the end of the stream (corrupt input)");
    return byte_unshuffle(out);
  }

 private:
  int quality_, lgwin_;
  bool shuffle_;
};

Schema brotli_schema() {
  Schema s;
  s.integer("quality", 11, 0, 11, "compression quality (11 = smallest, slowest)")
      .integer("lgwin", 22, 10, 24, "log2 of the sliding window")
      .boolean("byte_shuffle", false, "byte-shuffle (stride 2, \"BSHF\" header) before compressing");
  return s;
}

PGOLF_REGISTER(
    CompressorRegistry, "brotli", brotli_schema(),
    [](const Config& c) -> std::shared_ptr<Compressor> {
      return std::make_shared<BrotliCompressor>(static_cast<int>(c.i("quality")), static_cast<int>(c.i("lgwin")),
                                                c.b("byte_shuffle"));
    },
    "Brotli, quality 0-11, window 2^10-2^24");

}  // namespace
}  // namespace pgolf
#endif  // PGOLF_HAVE_BROTLI
