#!/usr/bin/env bash
# Installs the benchmark peers into DIR (default $SWSERVE_PEERS_DIR or ~/.cache/swserve/bench/peers), never into
# swserve itself, one folder each so their optional dependencies do not mix:
#   DIR/llama-cpp:    node-llama-cpp 3.21.1 and its prebuilt CPU binary for this platform (an npm package,
#                     so an npm registry, or a mirror of one, is all an offline machine needs);
#   DIR/transformers: @huggingface/transformers on onnxruntime-node.
# Usage: bench/peers/install-peers.sh [DIR]
set -euo pipefail
dir="${1:-${SWSERVE_PEERS_DIR:-$HOME/.cache/swserve/bench/peers}}"
platform="$(node -p 'process.platform + "-" + process.arch')"
# onnxruntime-node's install script would fetch CUDA libraries; its CPU build ships in the package.
export ONNXRUNTIME_NODE_INSTALL=skip
# No postinstall download or source build of llama.cpp: the prebuilt package is the binary we measure.
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true

install_into() {
  local folder="$1"
  shift
  mkdir -p "$folder"
  [ -f "$folder/package.json" ] || echo '{"name": "swserve-peer", "private": true, "type": "module"}' > "$folder/package.json"
  (cd "$folder" && npm install --no-audit --no-fund "$@")
}

# --omit=optional skips the CUDA and Vulkan builds (~600 MB); the CPU package is named explicitly.
install_into "$dir/llama-cpp" --omit=optional -E node-llama-cpp@3.21.1 "@node-llama-cpp/$platform@3.21.1"
install_into "$dir/transformers" @huggingface/transformers
(cd "$dir/llama-cpp" && node -e "import('node-llama-cpp').then(() => console.log('node-llama-cpp', require('./node_modules/node-llama-cpp/package.json').version))")
(cd "$dir/transformers" && node -e "import('@huggingface/transformers').then((t) => console.log('@huggingface/transformers', t.env.version))")
