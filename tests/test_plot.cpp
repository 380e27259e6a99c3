// pgolf-report --plot: a PNG written by scripts/plot_runs.py (matplotlib) that decodes: the signature, an IHDR of
// 1200 x 800 with a valid CRC, IDAT chunks whose inflated size is height × (1 + width × bytes per pixel), IEND.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/test_support.h"

namespace pgolf::testing {
namespace {

namespace fs = std::filesystem;

uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) | (uint32_t(uint8_t(s[at + 2])) << 8) |
         uint32_t(uint8_t(s[at + 3]));
}

struct Png {
  uint32_t width = 0, height = 0;
  int color_type = -1;
  std::string idat;
  bool crc_ok = true, iend = false;
};

Png parse_png(const std::string& b) {
  Png p;
  if (b.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return p;
  for (size_t at = 8; at + 12 <= b.size();) {
    const uint32_t len = be32(b, at);
    const std::string type = b.substr(at + 4, 4), data = b.substr(at + 8, len);
    const uLong crc = crc32(crc32(0, reinterpret_cast<const Bytef*>(type.data()), 4), reinterpret_cast<const Bytef*>(data.data()), len);
    p.crc_ok = p.crc_ok && crc == be32(b, at + 8 + len);
    if (type == "IHDR") {
      p.width = be32(data, 0);
      p.height = be32(data, 4);
      p.color_type = uint8_t(data[9]);
    } else if (type == "IDAT") {
      p.idat += data;
    } else if (type == "IEND") {
      p.iend = true;
    }
    at += 12 + len;
  }
  return p;
}

size_t inflated_size(const std::string& z) {
  z_stream s{};
  inflateInit(&s);
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data()));
  s.avail_in = static_cast<uInt>(z.size());
  std::string buf(1 << 16, '\0');
  size_t total = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    s.next_out = reinterpret_cast<Bytef*>(buf.data());
    s.avail_out = static_cast<uInt>(buf.size());
    rc = inflate(&s, Z_NO_FLUSH);
    total += buf.size() - s.avail_out;
  }
  inflateEnd(&s);
  return rc == Z_STREAM_END ? total : 0;
}

TEST(Plot, ReportPlotWritesDecodablePng) {
  TempDir dir("plot");
  for (int seed = 1; seed <= 2; ++seed) {
    const std::string d = "run" + std::to_string(seed);
    fs::create_directories(dir.file(d));
    dir.write(d + "/summary.json", R"({"recipe": "recipes/default.json", "val_bpb": 2.0, "quantized_val_bpb": 2.0})");
    std::string m;
    for (int step = 25; step <= 100; step += 25)
      m += "{\"type\": \"train\", \"step\": " + std::to_string(step) + ", \"loss\": " + std::to_string(6.0 - step / 50.0 + seed * 0.1) +
           ", \"train_ms\": " + std::to_string(step * 100) + "}\n";
    m += "{\"type\": \"eval\", \"step\": 100, \"val_bpb\": 1.9, \"train_ms\": 10000}\n";
    dir.write(d + "/metrics.jsonl", m);
  }
  const std::string png = dir.file("curves.png");
  const CommandResult r = run_command(std::string(PGOLF_BIN_DIR) + "/pgolf-report " + dir.file("run1") + " " + dir.file("run2") +
                                      " --plot " + png);
  if (r.code == 3) GTEST_SKIP() << "matplotlib is not installed (scripts/setup.sh installs python3-matplotlib): " << r.out;
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string header = "| recipe | seeds |";
  EXPECT_EQ(r.out.find(header, r.out.find(header) + 1), std::string::npos) << "table printed twice:\n" << r.out;
  std::stringstream ss;
  ss << std::ifstream(png, std::ios::binary).rdbuf();
  const Png p = parse_png(ss.str());
  EXPECT_EQ(p.width, 1200u);
  EXPECT_EQ(p.height, 800u);
  EXPECT_TRUE(p.crc_ok);
  EXPECT_TRUE(p.iend);
  ASSERT_TRUE(p.color_type == 2 || p.color_type == 6) << p.color_type;  // RGB or RGBA, 8 bits
  const size_t bpp = p.color_type == 6 ? 4 : 3;
  EXPECT_EQ(inflated_size(p.idat), size_t(p.height) * (1 + p.width * bpp));
}

TEST(Plot, ReportPlotWithoutMatplotlibWarnsWithExitThree) {
  TempDir dir("plot");
  fs::create_directories(dir.file("run"));
  dir.write("run/summary.json", R"({"recipe": "r.json"})");
  const CommandResult r = run_command("PGOLF_PYTHON=/bin/false " + std::string(PGOLF_BIN_DIR) + "/pgolf-report " +
                                      dir.file("run") + " --plot " + dir.file("x.png"));
  EXPECT_EQ(r.code, 3) << r.out;  // `make run` warns on 3 and goes on
  EXPECT_NE(r.out.find("warning: no plot written: matplotlib is not installed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| r | 1 |"), std::string::npos) << r.out;  // the table still printed
  EXPECT_FALSE(fs::exists(dir.file("x.png")));
}

}  // namespace
}  // namespace pgolf::testing
