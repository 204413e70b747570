#!/usr/bin/env bash
# Sanitized builds for fuzzing, all outside the source tree:
#   $OUT/ext/xmc             the xmc package with its extension built with ASan+UBSan
#                            (CMake option XMC_SANITIZE); fuzz/run_sanitized_tests.sh uses it
#   $OUT/xc_reader_fuzz      the native XC reader fuzz target: libFuzzer when clang
#                            is found, else a g++ ASan/UBSan standalone mutation loop
# Usage: fuzz/build_sanitized.sh [OUT]   (OUT defaults to /tmp/xmc-asan)
# Skip a part with XMC_FUZZ_SKIP_EXT=1 or XMC_FUZZ_SKIP_NATIVE=1.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-/tmp/xmc-asan}"
JOBS="${XMC_BUILD_JOBS:-1}"
PY="${PYTHON:-python}"
mkdir -p "$OUT"

if [ "${XMC_FUZZ_SKIP_EXT:-0}" != 1 ]; then
  # The same arguments setup.py passes, plus XMC_SANITIZE; the module lands in
  # $OUT/ext/xmc so the working tree's normal build is untouched.
  mkdir -p "$OUT/ext/xmc" "$OUT/cmake"
  cmake -S "$ROOT" -B "$OUT/cmake" \
    -DXMC_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$OUT/ext/xmc" \
    -DPython_EXECUTABLE="$(command -v "$PY")" \
    -Dpybind11_DIR="$("$PY" -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
    -DXMC_CUDA=OFF
  cmake --build "$OUT/cmake" -j "$JOBS"
  # The Python sources beside it make $OUT/ext an importable package (PYTHONPATH=$OUT/ext).
  tar -C "$ROOT" --exclude='*.so' --exclude=__pycache__ -cf - xmc | tar -C "$OUT/ext" -xf -
  echo "sanitized extension: $(ls "$OUT"/ext/xmc/_core*.so)"
fi

if [ "${XMC_FUZZ_SKIP_NATIVE:-0}" != 1 ]; then
  SRC=("$ROOT/fuzz/xc_reader_fuzz.cpp" "$ROOT/csrc/core/io/xc_reader.cpp" "$ROOT/csrc/core/common/errors.cpp")
  # No OpenMP: libFuzzer runs one input at a time and the chunking (the part
  # threads would split) still runs, serially, for every min_chunk_bytes choice.
  FLAGS=(-std=c++17 -O1 -g -fno-omit-frame-pointer -I"$ROOT/csrc" -fno-sanitize-recover=undefined)
  if command -v clang++ >/dev/null 2>&1; then
    clang++ "${FLAGS[@]}" -fsanitize=fuzzer,address,undefined "${SRC[@]}" -o "$OUT/xc_reader_fuzz"
    echo "libFuzzer target: $OUT/xc_reader_fuzz"
  else
    g++ "${FLAGS[@]}" -DXMC_FUZZ_STANDALONE -fsanitize=address,undefined "${SRC[@]}" -o "$OUT/xc_reader_fuzz"
    echo "standalone ASan/UBSan target (no clang): $OUT/xc_reader_fuzz"
  fi
fi
