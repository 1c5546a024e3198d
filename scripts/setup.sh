#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine to build, run and test Canh. Idempotent: each step checks
# before it acts and says what it does. Run as root or with sudo available. (The `systemd`
# package is for `systemd-analyze`, which the tests run on the units.)
#
#   scripts/setup.sh            system packages + ONNX Runtime + release build
#   scripts/setup.sh --no-build system packages + ONNX Runtime only
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
ORT_VERSION=1.32.0
ORT_DIR="$ROOT/.ort"
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"

say() { printf '[setup] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_PACKAGES=(
  build-essential pkg-config unzip python3-pip python3-venv
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  libgstrtspserver-1.0-dev mosquitto
  libopencv-dev clang libclang-dev libsqlite3-dev
  systemd
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages already installed"
fi

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install the Rust toolchain (https://rustup.rs) and run this script again" >&2
  exit 1
fi

# ONNX Runtime comes only as the shared library inside PyPI's wheel: nothing else is downloaded.
if [ -f "$ORT_LIB" ]; then
  say "ONNX Runtime $ORT_VERSION already in $ORT_DIR"
else
  say "fetching the onnxruntime==$ORT_VERSION wheel from PyPI and unpacking its shared library into $ORT_DIR"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "onnxruntime==$ORT_VERSION"
  mkdir -p "$ORT_DIR"
  unzip -q -o -j "$tmp"/onnxruntime-*.whl "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$ORT_DIR"
fi
ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"

if [ "${1:-}" != "--no-build" ]; then
  say "building the release binary (target/release/canh)"
  cargo build --release --locked -q -p canh
fi
say "done"
