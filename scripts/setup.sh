#!/usr/bin/env bash
# Installs what pgolf needs and is missing; safe to run again (each step skips what is present).
#  - Debian packages: compilers' companions and the libraries pgolf links (apt-get, as root or via sudo).
#  - LibTorch 2.11.0: the PyPI wheel torch==2.11.0 unpacked into $PGOLF_DEPS (default ~/.cache/pgolf),
#    unless a torch is already importable by python3 (the GPU machine) or PGOLF_TORCH_DIR is set.
set -euo pipefail

TORCH_VERSION=2.11.0
DEPS=${PGOLF_DEPS:-$HOME/.cache/pgolf}
APT_PACKAGES=(cmake ninja-build g++ ccache pkg-config python3 python3-pip
  libsentencepiece-dev sentencepiece nlohmann-json3-dev libspdlog-dev libgtest-dev
  zlib1g-dev libbrotli-dev liblzma-dev libzstd-dev libicu-dev python3.11-doc
  python3-matplotlib  # pgolf-report --plot; Debian's package, since Debian 12 refuses `pip install --user` (PEP 668)
  lrzip  # the pergroup artifact container (posttrain 7.3) runs the program
  libgloo-dev)  # the Gloo headers c10d's ProcessGroupGloo needs (the wheel ships the library, not them)

log() { printf '[setup] %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "Debian packages present"
fi

# LibTorch: the wheel is a complete LibTorch (include/, lib/, share/cmake/Torch).
if [ -n "${PGOLF_TORCH_DIR:-}" ]; then
  log "using PGOLF_TORCH_DIR=$PGOLF_TORCH_DIR"
elif python3 -c 'import torch' >/dev/null 2>&1; then
  log "using the torch importable by python3 ($(python3 -c 'import torch;print(torch.__version__)'))"
else
  dest="$DEPS/torch-$TORCH_VERSION"
  if [ -f "$dest/torch/lib/libtorch_cpu.so" ]; then
    log "LibTorch $TORCH_VERSION present in $dest"
  else
    log "fetching torch==$TORCH_VERSION wheel (LibTorch) into $dest"
    tmp=$(mktemp -d "$DEPS.XXXXXX" 2>/dev/null || { mkdir -p "$(dirname "$DEPS")"; mktemp -d "$DEPS.XXXXXX"; })
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download -q --no-deps --only-binary=:all: "torch==$TORCH_VERSION" -d "$tmp/wheel"
    python3 - "$tmp/wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/torch-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    members = [m for m in z.namelist()
               if m.startswith(("torch/include/", "torch/lib/", "torch/share/")) or m == "torch/version.py"]
    z.extractall(sys.argv[2], members)
PY
    chmod -R u+rwX "$tmp/unpacked"
    mkdir -p "$DEPS"
    rm -rf "$dest"
    mv "$tmp/unpacked" "$dest"
    log "LibTorch $TORCH_VERSION installed in $dest"
  fi
fi
