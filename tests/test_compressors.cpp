// Compressors and the byte shuffle: spec §11.1 vector, round trips, determinism, rejection of damaged input,
// and streams written by other implementations (Python's zlib/lzma, the zstd CLI, RFC 7932's empty stream).
#include <gtest/gtest.h>
#include <zlib.h>

#include <random>

#include "framework/artifact.h"
#include "quant/byte_shuffle.h"

namespace {

using pgolf::Json;

std::string bytes(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return s;
}

std::string unhex(const std::string& h) {
  std::string s;
  for (size_t i = 0; i + 1 < h.size(); i += 2) s.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return s;
}

std::shared_ptr<pgolf::Compressor> make(Json j) {
  const std::string name = j["name"].get<std::string>();
  j.erase("name");
  const pgolf::Schema* schema = pgolf::SchemaCatalog::get().find("compressor", name);
  if (!schema) throw std::runtime_error("no compressor " + name);
  Json v = Json{{"name", name}};
  const Json valid = schema->validate(j, "artifact.compressor", "test");  // items() must not outlive it
  for (auto& [k, x] : valid.items()) v[k] = x;
  return pgolf::CompressorRegistry::get().build(pgolf::Config(v, "artifact.compressor"));
}

// Every codec configuration under test; brotli only where the build has it.
std::vector<Json> configs() {
  std::vector<Json> c = {{{"name", "zlib"}},
                         {{"name", "zlib"}, {"level", 1}},
                         {{"name", "zstd"}},
                         {{"name", "zstd"}, {"level", 3}},
                         {{"name", "lzma"}},
                         {{"name", "lzma"}, {"preset", 9}, {"extreme", true}},
                         {{"name", "lzma"}, {"format", "raw"}},
                         {{"name", "lzma"}, {"format", "raw"}, {"preset", 9}, {"extreme", true}}};
#ifdef PGOLF_HAVE_BROTLI
  c.push_back({{"name", "brotli"}});
  c.push_back({{"name", "brotli"}, {"quality", 5}, {"lgwin", 16}});
#endif
  const size_t n = c.size();
  for (size_t i = 0; i < n; ++i) {
    Json s = c[i];
    s["byte_shuffle"] = true;
    c.push_back(s);
  }
  return c;
}

// Half structured (fp16-like pairs: a low random byte and a high byte from a few values), half random.
std::string sample(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n / 2; ++i) s[i] = static_cast<char>(i % 2 ? 0x30 + rng() % 4 : rng() & 0xFF);
  for (size_t i = n / 2; i < n; ++i) s[i] = static_cast<char>(rng() & 0xFF);
  return s;
}

TEST(CompressorShuffle, SpecVectorAndInverse) {
  const std::string in = bytes({1, 2, 3, 4, 5});
  const std::string want = bytes({0x42, 0x53, 0x48, 0x46, 0x02, 0x01, 0x03, 0x05, 0x02, 0x04});  // §11.1
  EXPECT_EQ(pgolf::byte_shuffle(in), want);
  EXPECT_EQ(pgolf::byte_unshuffle(want), in);
}

TEST(CompressorShuffle, EvenEmptyAndOtherStrides) {
  const std::string even = bytes({1, 2, 3, 4, 5, 6});
  EXPECT_EQ(pgolf::byte_shuffle(even), std::string("BSHF") + bytes({2, 1, 3, 5, 2, 4, 6}));
  EXPECT_EQ(pgolf::byte_unshuffle(pgolf::byte_shuffle(even)), even);
  EXPECT_EQ(pgolf::byte_shuffle(""), std::string("BSHF") + bytes({2}));
  EXPECT_EQ(pgolf::byte_unshuffle(std::string("BSHF") + bytes({2})), "");
  // Stride 3 over 7 bytes: lanes of 3, 2, 2 bytes.
  const std::string seven = bytes({1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(pgolf::byte_shuffle(seven, 3), std::string("BSHF") + bytes({3, 1, 4, 7, 2, 5, 3, 6}));
  EXPECT_EQ(pgolf::byte_unshuffle(pgolf::byte_shuffle(seven, 3)), seven);
  const std::string one = bytes({9});
  EXPECT_EQ(pgolf::byte_unshuffle(pgolf::byte_shuffle(one)), one);
}

TEST(CompressorShuffle, NoMagicPassesThroughAndBadHeaderThrows) {
  EXPECT_EQ(pgolf::byte_unshuffle("hello"), "hello");
  EXPECT_EQ(pgolf::byte_unshuffle("BSH"), "BSH");
  EXPECT_EQ(pgolf::byte_unshuffle(""), "");
  EXPECT_THROW(pgolf::byte_unshuffle("BSHF"), std::runtime_error);  // no stride byte
  EXPECT_THROW(pgolf::byte_unshuffle(std::string("BSHF") + bytes({0, 1, 2})), std::runtime_error);
  EXPECT_THROW(pgolf::byte_shuffle("x", 0), std::runtime_error);
}

TEST(CompressorShuffle, RawDataThatLooksShuffledIsEscaped) {
  const std::string raw = std::string("BSHF") + bytes({2, 'x', 'y'});
  EXPECT_EQ(pgolf::shuffle_for_codec(raw, false), std::string("BSHF") + bytes({1}) + raw);
  EXPECT_EQ(pgolf::byte_unshuffle(pgolf::shuffle_for_codec(raw, false)), raw);
  EXPECT_EQ(pgolf::shuffle_for_codec("abc", false), "abc");
  EXPECT_EQ(pgolf::shuffle_for_codec("abc", true), std::string("BSHF") + bytes({2, 'a', 'c', 'b'}));
}

TEST(Compressor, RoundTripsRandomEmptyAndMagicLookalikes) {
  const std::string data = sample(48 * 1024, 7), odd = sample(1001, 8);
  const std::string lookalike = std::string("BSHF") + bytes({2}) + "payload";
  for (const Json& cfg : configs()) {
    SCOPED_TRACE(cfg.dump());
    auto c = make(cfg);
    EXPECT_EQ(c->decompress(c->compress(data)), data);
    EXPECT_EQ(c->decompress(c->compress(odd)), odd);
    EXPECT_EQ(c->decompress(c->compress("")), "");
    EXPECT_EQ(c->decompress(c->compress(lookalike)), lookalike);
  }
}

TEST(Compressor, DeterministicAndActuallyCompresses) {
  const std::string data = sample(32 * 1024, 11);
  for (const Json& cfg : configs()) {
    SCOPED_TRACE(cfg.dump());
    const std::string a = make(cfg)->compress(data), b = make(cfg)->compress(data);
    EXPECT_EQ(a, b);
    EXPECT_LT(a.size(), data.size());  // the structured half is ~2.7 bits/byte cheaper
  }
}

TEST(Compressor, RejectsGarbageTruncatedAndTrailingBytes) {
  const std::string garbage = "this is not compressed data at all, 0123456789";
  const std::string data = sample(8 * 1024, 3);
  for (const Json& cfg : configs()) {
    SCOPED_TRACE(cfg.dump());
    auto c = make(cfg);
    EXPECT_THROW(c->decompress(garbage), std::runtime_error);
    EXPECT_THROW(c->decompress(""), std::runtime_error);
    const std::string packed = c->compress(data);
    EXPECT_THROW(c->decompress(packed.substr(0, packed.size() / 2)), std::runtime_error);
    EXPECT_THROW(c->decompress(packed + "junk"), std::runtime_error);
  }
}

TEST(Compressor, ShuffleKeyShufflesBeforeTheCodec) {
  const std::string data = sample(4096, 5);
  const std::string packed = make({{"name", "zlib"}, {"byte_shuffle", true}})->compress(data);
  // Inflate with zlib itself: the codec saw the shuffled bytes.
  std::string inflated(data.size() + 5, '\0');
  uLongf n = inflated.size();
  ASSERT_EQ(uncompress(reinterpret_cast<Bytef*>(inflated.data()), &n, reinterpret_cast<const Bytef*>(packed.data()),
                       packed.size()),
            Z_OK);
  inflated.resize(n);
  EXPECT_EQ(inflated, pgolf::byte_shuffle(data, 2));
  // A reader configured without the shuffle still detects and undoes it.
  EXPECT_EQ(make({{"name", "zlib"}})->decompress(packed), data);
}

TEST(Compressor, ReadsStreamsFromOtherImplementations) {
  const std::string text = "hello hello hello hello";
  // Python: zlib.compress(text, 9)
  EXPECT_EQ(make({{"name", "zlib"}})->decompress(unhex("78dacb48cdc9c957c8402701680308b1")), text);
  // zstd CLI 1.5.4: zstd -19 (with a content checksum, which the reader verifies)
  EXPECT_EQ(make({{"name", "zstd"}})->decompress(unhex("28b52ffd04686500003068656c6c6f200100994b11175eae0d")), text);
  // Python: lzma.compress(text, preset=6) (.xz, CRC64)
  EXPECT_EQ(make({{"name", "lzma"}})
                ->decompress(unhex("fd377a585a000004e6d6b4460200210116000000742fe5a3e00016000b5d00341949ee8de9560ab5e0"
                                   "0000008943dbea0334e4d000012717898290791fb6f37d010000000004595a")),
            text);
  // Python: lzma.compress(text, format=FORMAT_RAW, filters=[{"id": FILTER_LZMA2, "preset": 6}])
  EXPECT_EQ(make({{"name", "lzma"}, {"format", "raw"}})->decompress(unhex("e00016000b5d00341949ee8de9560ab5e00000")),
            text);
  // Our formats begin as those tools' do: zlib level 9 header 78 DA, zstd magic, xz magic.
  EXPECT_EQ(make({{"name", "zlib"}})->compress(text).substr(0, 2), unhex("78da"));
  EXPECT_EQ(make({{"name", "zstd"}})->compress(text).substr(0, 4), unhex("28b52ffd"));
  EXPECT_EQ(make({{"name", "lzma"}})->compress(text).substr(0, 6), unhex("fd377a585a00"));
#ifdef PGOLF_HAVE_BROTLI
  // RFC 7932: WBITS '0' (16), ISLAST 1, ISLASTEMPTY 1 -> the byte 0b110: an empty stream.
  EXPECT_EQ(make({{"name", "brotli"}})->decompress(unhex("06")), "");
#endif
}

TEST(Compressor, SchemaRejectsOutOfRangeKeys) {
  EXPECT_THROW(make({{"name", "zlib"}, {"level", 10}}), pgolf::ConfigError);
  EXPECT_THROW(make({{"name", "zstd"}, {"level", 23}}), pgolf::ConfigError);
  EXPECT_THROW(make({{"name", "lzma"}, {"format", "lzma1"}}), pgolf::ConfigError);
  EXPECT_THROW(make({{"name", "zlib"}, {"quality", 3}}), pgolf::ConfigError);
}

}  // namespace
