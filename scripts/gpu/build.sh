#!/usr/bin/env bash
# Builds pgolf with CUDA on the GPU machine into build-gpu/. The image lacks the lzma and brotli headers:
# the carried .debs are unpacked into .gpu/prefix (never into /) for their headers, and we link the
# image's own runtime libraries.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu/prefix
for d in .gpu/debs/*.deb; do dpkg -x "$d" .gpu/prefix; done
lib() { ls /usr/lib/x86_64-linux-gnu/$1.so.* 2>/dev/null | head -1; }
extra=()
if [ -n "$(lib libbrotlienc)" ] && [ -n "$(lib libbrotlidec)" ]; then
  extra+=(-DBROTLI_INCLUDE_DIR="$PWD/.gpu/prefix/usr/include" -DBROTLI_ENC_LIB="$(lib libbrotlienc)" -DBROTLI_DEC_LIB="$(lib libbrotlidec)")
fi
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DPGOLF_CUDA=ON \
  -DLIBLZMA_INCLUDE_DIR="$PWD/.gpu/prefix/usr/include" -DLIBLZMA_LIBRARY="$(lib liblzma)" "${extra[@]}" >/dev/null
# TARGETS: what to build (default everything the benchmarks and the GPU tests need).
cmake --build build-gpu -j "$(nproc)" --target ${TARGETS:-trainer pgolf-data pgolf_tests}
