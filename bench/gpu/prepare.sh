#!/usr/bin/env bash
# Packs what bench/gpu/run.sh needs on a GPU machine that has no Node and no network into bench/gpu/carry/
# (git-ignored): this machine's node binary, the production node_modules with onnxruntime-node's Linux
# x64 binaries only (its WebGPU provider is inside them), the compiled code, and the Vulkan loader package.
# About 40 MB. Then on the GPU machine, from the repository root: bench/gpu/run.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="$repo/bench/gpu/carry"
cd "$repo"
npm run build >/dev/null
rm -rf "$out" && mkdir -p "$out/debs"
xz -T0 -6 -c "$(command -v node)" >"$out/node.xz"
modules="$(mktemp -d)"
trap 'rm -rf "$modules"' EXIT
cp package.json package-lock.json "$modules/"
(cd "$modules" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
find "$modules/node_modules/onnxruntime-node/bin" -mindepth 3 -maxdepth 3 -type d ! -path '*/linux/x64' -exec rm -rf {} +
tar -C "$modules" -cf - node_modules | xz -T0 -6 >"$out/node_modules.tar.xz"
tar -cf - dist package.json | xz -T0 -6 >"$out/dist.tar.xz"
# Dawn finds the GPU through the Vulkan loader; the NVIDIA driver brings the rest (device README).
(cd "$out/debs" && apt-get -o APT::Sandbox::User=root download -qq libvulkan1)
du -sh "$out"
