// Loading plugins (`trainer --plugin LIB.so`): shared libraries that register more components.
#pragma once

#include <string>

namespace pgolf {

// Loads one plugin. The path is taken relative to the working directory first, then searched in
// LD_LIBRARY_PATH (for a bare file name). Before dlopen, the file's ABI stamp must equal this binary's.
// Throws ConfigError (exit 2) for a missing file, a missing or different stamp, a failed dlopen, or a component
// name registered twice (naming both sources); warns on stderr when the plugin registered nothing.
void load_plugin(const std::string& path);

// Throws ConfigError when the built-in registrations hold a duplicate (two files registering one name).
void check_registrations();

// This binary's stamp, PGOLF_ABI_STAMP; and the one a file carries ("" when it carries none).
std::string abi_stamp();
std::string read_abi_stamp(const std::string& file);

}  // namespace pgolf
