#!/usr/bin/env bash
# A CUDA build made HERE (no GPU needed: the PyPI torch 2.11.0 wheel is the GPU machine's 2.11.0+cu130, and
# the CUDA 13.0 toolkit compiles the kernels) and carried to the GPU machine, so that a device call spends
# no time compiling (its 16 cores take longer for a full build than a call can spare).
#
#   here:    scripts/gpu/prebuilt.sh build     CUDA build into build-cuda/ (trainer, pgolf-data, pgolf-artifact,
#                                              pgolf_gpu_tests); the wheel's CUDA-side libraries (cuDNN, NCCL, ...)
#                                              are not installed here, hence --allow-shlib-undefined
#            scripts/gpu/prebuilt.sh pack      those binaries + the Debian 12 libraries the GPU image has under
#                                              other sonames (spdlog 1.10, fmt 9, sentencepiece) -> .gpu/prebuilt.tar.xz
# The binaries' RUNPATH is this machine's wheel lib/ and $ORIGIN/../lib: install points the first at the GPU
# machine's torch and puts the carried libraries, and links to the CUDA runtime libraries found there, in the second.
#   device:  scripts/gpu/build.sh              installs .gpu/prebuilt.tar.xz into build-gpu/ when it exists
#            (or scripts/gpu/prebuilt.sh install)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN_NAMES=(trainer pgolf-data pgolf-artifact pgolf_gpu_tests)
TORCH_HERE=${PGOLF_DEPS:-$HOME/.cache/pgolf}/torch-2.11.0/torch
case ${1:-} in
  build)
    cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DPGOLF_CUDA=ON -DCMAKE_DISABLE_FIND_PACKAGE_ICU=ON \
      "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined -Wl,-rpath-link,/usr/local/cuda/lib64" \
      "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,--allow-shlib-undefined" '-DCMAKE_BUILD_RPATH=$ORIGIN/../lib' >/dev/null
    cmake --build build-cuda -j "${JOBS:-$(nproc)}" --target "${BIN_NAMES[@]}" ;;
  pack)
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage/bin" "$stage/lib"
    for b in "${BIN_NAMES[@]}"; do cp "build-cuda/bin/$b" "$stage/bin/$b"; done  # unstripped: crash reports resolve
    for l in libspdlog.so.1.10 libfmt.so.9 libsentencepiece.so.0 libsentencepiece_train.so.0; do
      cp -L "/usr/lib/x86_64-linux-gnu/$l" "$stage/lib/"
    done
    # The binaries find LibTorch through their RUNPATH, this machine's wheel directory: recorded for install.
    echo "$TORCH_HERE" > "$stage/torch_runpath"
    mkdir -p .gpu
    tar -C "$stage" -cJf .gpu/prebuilt.tar.xz .
    echo "[prebuilt] .gpu/prebuilt.tar.xz: $(du -m .gpu/prebuilt.tar.xz | cut -f1) MiB" ;;
  install)
    [ -f .gpu/prebuilt.tar.xz ] || { echo "[prebuilt] .gpu/prebuilt.tar.xz missing: run 'scripts/gpu/prebuilt.sh pack' here and carry .gpu" >&2; exit 1; }
    mkdir -p build-gpu
    tar -C build-gpu -xJf .gpu/prebuilt.tar.xz
    want=$(cat build-gpu/torch_runpath)
    have=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')
    [ -e "$want" ] || { mkdir -p "$(dirname "$want")" && ln -s "$have" "$want"; }
    # Direct needs the loader cannot find yet (the CUDA runtime): linked from the wheel's nvidia/ or the toolkit.
    for lib in $(ldd build-gpu/bin/* | awk '/not found/ {print $1}' | sort -u); do
      hit=$(find "$(dirname "$have")/nvidia" /usr/local/cuda/lib64 /usr/local/cuda/targets -name "$lib" 2>/dev/null | head -1 || true)
      [ -n "$hit" ] && ln -sf "$hit" "build-gpu/lib/$lib" || echo "[prebuilt] warning: $lib not found here" >&2
    done
    missing=$(ldd build-gpu/bin/* 2>/dev/null | grep "not found" | sort -u || true)
    [ -z "$missing" ] || { echo "[prebuilt] libraries the loader cannot find: $missing" >&2; exit 1; }
    echo "[prebuilt] installed into build-gpu/bin (torch $(python3 -c 'import torch; print(torch.__version__)') at $have)" ;;
  *) echo "usage: prebuilt.sh build | pack | install" >&2; exit 2 ;;
esac
