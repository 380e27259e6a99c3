#!/usr/bin/env bash
# Builds pgolf with CUDA on the GPU machine into build-gpu/. The image lacks the lzma and brotli headers:
# the carried .debs are unpacked into .gpu/prefix (never into /) for their headers, and we link the
# image's own runtime libraries.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu/prefix
for d in .gpu/debs/*.deb; do dpkg -x "$d" .gpu/prefix; done
lib() { ls /usr/lib/x86_64-linux-gnu/$1.so.* 2>/dev/null | head -1; }
# lrzip (the pergroup artifact container) from the carried .debs: .gpu/bin/lrzip runs it with the carried
# liblzo2 beside it; put .gpu/bin on PATH (or set the container's lrzip key to it).
if [ -x .gpu/prefix/usr/bin/lrzip ] && ! command -v lrzip >/dev/null; then
  mkdir -p .gpu/bin
  p=$PWD/.gpu/prefix
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s/usr/lib/x86_64-linux-gnu:%s/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s/usr/bin/lrzip "$@"\n' \
    "$p" "$p" "$p" > .gpu/bin/lrzip
  chmod +x .gpu/bin/lrzip
fi
# A build made on the development machine and carried (scripts/gpu/prebuilt.sh pack) serves when it holds
# every target asked for; PGOLF_GPU_BUILD=source builds here regardless.
if [ -f .gpu/prebuilt.tar.xz ] && [ "${PGOLF_GPU_BUILD:-}" != source ]; then
  [ -x build-gpu/bin/trainer ] || bash scripts/gpu/prebuilt.sh install
  missing=""
  for t in ${TARGETS:-trainer pgolf-data pgolf_gpu_tests}; do [ -x "build-gpu/bin/$t" ] || missing="$missing $t"; done
  [ -z "$missing" ] && exit 0
  echo "[build] the carried build lacks$missing: building from source" >&2
  rm -rf build-gpu
fi
extra=()
if [ -n "$(lib libbrotlienc)" ] && [ -n "$(lib libbrotlidec)" ]; then
  extra+=(-DBROTLI_INCLUDE_DIR="$PWD/.gpu/prefix/usr/include" -DBROTLI_ENC_LIB="$(lib libbrotlienc)" -DBROTLI_DEC_LIB="$(lib libbrotlidec)")
fi
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DPGOLF_CUDA=ON \
  -DLIBLZMA_INCLUDE_DIR="$PWD/.gpu/prefix/usr/include" -DLIBLZMA_LIBRARY="$(lib liblzma)" "${extra[@]}" >/dev/null
# TARGETS: what to build (default the benchmarks' programs and the GPU tests).
cmake --build build-gpu -j "$(nproc)" --target ${TARGETS:-trainer pgolf-data pgolf_gpu_tests} -- ${NINJA_FLAGS:-}
