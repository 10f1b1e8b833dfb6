#!/usr/bin/env bash
# On a GPU machine without Node or network, from the repository root with bench/gpu/carry/ (made by
# bench/gpu/prepare.sh) beside it: unpacks Node, node_modules and the compiled code into a scratch
# folder, brings the Vulkan loader if the system has none, and runs the check and benchmark
# (bench/gpu/gpu-bench.ts; arguments pass through, e.g. --repeats 1). A few minutes on an H200 host.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
carry="$repo/bench/gpu/carry"
work="${SWSERVE_GPU_WORK:-/tmp/swserve-gpu}"
[ -f "$carry/node.xz" ] || { echo "bench/gpu/carry is missing: run bench/gpu/prepare.sh on a machine with Node first" >&2; exit 2; }
unxz() { if command -v xz >/dev/null; then xz -dc "$1"; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
rm -rf "$work" && mkdir -p "$work"
unxz "$carry/node.xz" >"$work/node" && chmod +x "$work/node"
unxz "$carry/node_modules.tar.xz" | tar -C "$work" -xf -
unxz "$carry/dist.tar.xz" | tar -C "$work" -xf -
if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  for deb in "$carry"/debs/*.deb; do dpkg -x "$deb" "$work/vulkan"; done
  export LD_LIBRARY_PATH="$work/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# Where NVIDIA's container runtime mounts its Vulkan driver manifest, when the loader does not look there.
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then export VK_DRIVER_FILES="$nvidia_icd"; fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"
cd "$work"
exec ./node dist/bench/gpu/gpu-bench.js "$@"
