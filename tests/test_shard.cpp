// Token shard format (spec posttrain §2.1): header bytes, round trip, every malformed-file error, the glob.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "framework/shard.h"
#include "tests/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A raw shard from explicit header fields and payload size (bytes after the header).
std::string raw_shard(int32_t magic, int32_t version, int32_t n, size_t payload_bytes) {
  std::string b(1024 + payload_bytes, '\0');
  const int32_t h[3] = {magic, version, n};
  std::memcpy(b.data(), h, sizeof(h));
  return b;
}

std::string error_of(const std::string& path) {
  try {
    ShardView v(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Shard, WriteReadRoundTripAndHeaderBytes) {
  TempDir d;
  const std::string f = d.file("s.bin");
  const std::vector<uint16_t> tokens = {0, 1, 65535, 300, 7};
  write_shard(f, tokens);

  const std::string b = read_bytes(f);
  ASSERT_EQ(b.size(), 1024u + 2 * 5);
  // 20240520 = 0x0134D888, 1, 5, each little-endian int32.
  const unsigned char expect_header[12] = {136, 216, 52, 1, 1, 0, 0, 0, 5, 0, 0, 0};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(static_cast<unsigned char>(b[i]), expect_header[i]) << "byte " << i;
  for (int i = 12; i < 1024; ++i) ASSERT_EQ(b[i], '\0') << "header byte " << i << " must be zero";
  // Payload little-endian uint16: 65535 -> ff ff, 300 = 0x012c -> 2c 01.
  const unsigned char expect_payload[10] = {0, 0, 1, 0, 255, 255, 0x2c, 0x01, 7, 0};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(static_cast<unsigned char>(b[1024 + i]), expect_payload[i]);

  ShardView v(f);
  ASSERT_EQ(v.size(), 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(v.data()[i], tokens[i]);
  EXPECT_EQ(v.path(), f);
  EXPECT_FALSE(fs::exists(f + ".tmp." + std::to_string(::getpid())));  // atomic write left no temp file
}

TEST(Shard, EmptyShardIsValid) {
  TempDir d;
  write_shard(d.file("e.bin"), {});
  EXPECT_EQ(read_bytes(d.file("e.bin")).size(), 1024u);
  EXPECT_EQ(ShardView(d.file("e.bin")).size(), 0);
}

TEST(Shard, TruncatedPayloadNamesFileAndProblem) {
  TempDir d;
  const std::string f = d.file("t.bin");
  write_bytes(f, raw_shard(20240520, 1, 5, 9));  // header says 5 tokens = 10 bytes
  const std::string e = error_of(f);
  EXPECT_NE(e.find(f), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(Shard, ShorterThanHeaderNamesFile) {
  TempDir d;
  const std::string f = d.file("h.bin");
  write_bytes(f, std::string(100, '\0'));
  const std::string e = error_of(f);
  EXPECT_NE(e.find(f), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(Shard, WrongMagicNamesFileAndMagic) {
  TempDir d;
  const std::string f = d.file("m.bin");
  write_bytes(f, raw_shard(12345, 1, 2, 4));
  const std::string e = error_of(f);
  EXPECT_NE(e.find(f), std::string::npos) << e;
  EXPECT_NE(e.find("magic 12345"), std::string::npos) << e;
}

TEST(Shard, WrongVersionNamesFileAndVersion) {
  TempDir d;
  const std::string f = d.file("v.bin");
  write_bytes(f, raw_shard(20240520, 2, 2, 4));
  const std::string e = error_of(f);
  EXPECT_NE(e.find(f), std::string::npos) << e;
  EXPECT_NE(e.find("version 2"), std::string::npos) << e;
}

TEST(Shard, TrailingBytesNamesFile) {
  TempDir d;
  const std::string f = d.file("x.bin");
  write_bytes(f, raw_shard(20240520, 1, 2, 6));  // 2 tokens = 4 bytes, 2 extra
  const std::string e = error_of(f);
  EXPECT_NE(e.find(f), std::string::npos) << e;
  EXPECT_NE(e.find("trailing bytes"), std::string::npos) << e;
}

TEST(Shard, MissingFileNamesFile) {
  TempDir d;
  const std::string f = d.file("absent.bin");
  EXPECT_NE(error_of(f).find(f), std::string::npos);
}

TEST(Shard, GlobSortsAndSkipsByteSidecars) {
  TempDir d;
  for (const char* n : {"fineweb_val_000001.bin", "fineweb_val_bytes_000000.bin", "fineweb_val_000000.bin"})
    write_shard(d.file(n), {1, 2});
  const auto tokens = glob_shards(d.file("fineweb_val_*.bin"));
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens[0], d.file("fineweb_val_000000.bin"));
  EXPECT_EQ(tokens[1], d.file("fineweb_val_000001.bin"));
  const auto all = glob_shards(d.file("fineweb_val_*.bin"), /*skip_sidecars=*/false);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2], d.file("fineweb_val_bytes_000000.bin"));

  const std::string pattern = d.file("fineweb_train_*.bin");
  try {
    glob_shards(pattern);
    FAIL() << "expected an error for a glob that matches nothing";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(pattern), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pgolf
