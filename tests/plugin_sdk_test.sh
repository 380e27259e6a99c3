#!/usr/bin/env bash
# The plugin SDK round trip (issue 16): install pgolf into a fresh prefix, configure and build
# examples/plugin against it, load it with --plugin, find it in --list, train 2 steps with a recipe that
# selects it. Usage: plugin_sdk_test.sh BUILD_DIR SOURCE_DIR. Exit 77 (skipped) without the default data.
set -euo pipefail
build=$1 src=$2
[ -e "$src/data/default/READY" ] || { echo "default data missing (make data): skipped"; exit 77; }
# A fixed folder in the build tree, not mktemp: the plugin's compile line then names the same include paths on
# every run, so ccache can serve it (a fresh random prefix made every run a miss: ~40 s of torch headers).
work=$(cd "$build" && pwd)/plugin_sdk_test
rm -rf "$work" && mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$src/examples/plugin" -B "$work/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" "${launcher[@]}" >/dev/null
cmake --build "$work/build" >/dev/null
plugin="$work/build/libswiglu_mlp.so"
trainer="$work/prefix/bin/trainer"
listing=$("$trainer" --plugin "$plugin" --list)  # captured, not piped: grep -q would SIGPIPE it under pipefail
grep -q "swiglu_example - SwiGLU MLP" <<<"$listing" || { echo "--list lacks swiglu_example"; exit 1; }
cd "$src"
# Steps of 1,024 tokens and a 4k-token validation (the recipe's 8,192 and 65,536 were 6 of this test's 7 s when
# ccache serves the plugin's build).
OMP_NUM_THREADS=1 "$trainer" --plugin "$plugin" --recipe examples/plugin/swiglu.json --out "$work/run" \
  --set train.iterations=2 --set train.val_every=0 --set train.log_every=1 \
  --set data.batch_tokens=1024 --set data.val_max_tokens=4096 \
  --set train.warmup_steps=0 --set pipeline.4.code.count=none  # a plugin's code ships on its own, outside the bundle
grep -q '"name": "swiglu_example"' "$work/run/recipe.json" || { echo "recipe.json does not select the plugin"; exit 1; }
grep -q '"steps": 2' "$work/run/summary.json" || { echo "summary.json: not 2 steps"; cat "$work/run/summary.json"; exit 1; }
echo "plugin SDK round trip: installed, built, listed, trained 2 steps"
