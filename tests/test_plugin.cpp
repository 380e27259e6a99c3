// The plugin loader (issue 14 class 8): a duplicate name fails with exit 2 naming both sources; a plugin that
// registers nothing earns a warning; a bare file name is found in the working directory; a plugin whose ABI
// stamp differs is refused before any of its code runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "framework/plugin.h"
#include "framework/registry.h"
#include "tests/test_support.h"

namespace pgolf::testing {
namespace {

namespace fs = std::filesystem;

const std::string kTrainer = std::string(PGOLF_BIN_DIR) + "/trainer";
const std::string kDup = std::string(PGOLF_LIB_DIR) + "/libpgolf_test_dup_plugin.so";
const std::string kEmpty = std::string(PGOLF_LIB_DIR) + "/libpgolf_test_empty_plugin.so";

TEST(Plugin, DuplicateNameFailsNamingBothSources) {
  const CommandResult r = run_command(kTrainer + " --plugin " + kDup + " --list");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("mlp 'relu2' is registered twice: first by "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("models/relu2_mlp.cpp, again by plugin " + kDup + " ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tests/plugins/dup_plugin.cpp)"), std::string::npos) << r.out;
}

TEST(Plugin, EmptyPluginWarnsAndBareNameResolvesInWorkingDirectory) {
  const CommandResult r = run_command("cd " + fs::path(kEmpty).parent_path().string() + " && " + kTrainer +
                                      " --plugin libpgolf_test_empty_plugin.so --list");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: --plugin libpgolf_test_empty_plugin.so: registered no components"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mlp:"), std::string::npos) << r.out;  // --list still lists the built-in components
}

TEST(Plugin, MissingPluginNamesTheWorkingDirectory) {
  const CommandResult r = run_command("cd /tmp && " + kTrainer + " --plugin libnosuch_pgolf.so --list");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--plugin libnosuch_pgolf.so: no such file (looked in the working directory /tmp"), std::string::npos) << r.out;
}

TEST(Plugin, OtherAbiStampRefusedBeforeItsCodeRuns) {
  TempDir dir("plugin");
  std::stringstream ss;
  ss << std::ifstream(kDup, std::ios::binary).rdbuf();
  std::string bytes = ss.str();
  const std::string ours = "pgolf " PGOLF_VERSION " abi", theirs = "pgolf 0.0.0" + std::string(ours.size() - 15, '0') + " abi";
  ASSERT_EQ(ours.size(), theirs.size());
  size_t n = 0;
  for (size_t at = 0; (at = bytes.find(ours, at)) != std::string::npos; ++n) bytes.replace(at, ours.size(), theirs);
  ASSERT_GE(n, 1u);
  const std::string other = dir.write("libother.so", bytes);
  EXPECT_EQ(read_abi_stamp(other).rfind(theirs, 0), 0u);
  const CommandResult r = run_command(kTrainer + " --plugin " + other + " --list");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("built against another pgolf (" + theirs), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("this trainer is " + abi_stamp()), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("registered twice"), std::string::npos) << r.out;  // its static initialisers never ran
}

TEST(Plugin, NotAPluginRefused) {
  TempDir dir("plugin");
  const std::string junk = dir.write("libjunk.so", "not an ELF file");
  const CommandResult r = run_command(kTrainer + " --plugin " + junk + " --list");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("not a pgolf plugin (no ABI stamp"), std::string::npos) << r.out;
}

TEST(Plugin, RegistrationLogRecordsDuplicatesWithoutThrowing) {
  RegistrationLog& log = RegistrationLog::get();
  log.take_errors();
  EXPECT_TRUE(log.claim("test_kind", "a", "one.cpp"));
  EXPECT_FALSE(log.claim("test_kind", "a", "two.cpp"));
  const auto errors = log.take_errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "test_kind 'a' is registered twice: first by one.cpp, again by two.cpp; rename one of them");
}

}  // namespace
}  // namespace pgolf::testing
