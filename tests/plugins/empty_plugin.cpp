// A test plugin that carries the ABI stamp (it includes the registry) but registers nothing.
#include "framework/registry.h"
