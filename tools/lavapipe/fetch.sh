#!/usr/bin/env bash
# Unpacks Mesa's software Vulkan driver (lavapipe) and the Vulkan loader into .lavapipe/ (git-ignored),
# so onnxruntime's WebGPU provider (Dawn over Vulkan) runs on a machine without a GPU and the tests can
# check --device webgpu for real. Debian bookworm's Mesa 22.3 lavapipe lacks what Dawn requires
# (shaderUniform*ArrayDynamicIndexing), so Mesa comes from bookworm-backports (25.x), read through a
# private apt list: the system's sources and packages are left as they are.
# Usage: tools/lavapipe/fetch.sh [DIR]   (default .lavapipe in the repository root)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/.lavapipe}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/sources" "$out/debs"
cat >"$work/sources/backports.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/sources" -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" update -qq
# libvulkan1 (the loader) from bookworm itself works with the newer driver; libdrm is the driver's only newer need.
(cd "$out/debs" && apt-get "${apt_opts[@]}" download -qq mesa-vulkan-drivers/bookworm-backports libdrm2/bookworm-backports libdrm-amdgpu1/bookworm-backports libvulkan1/bookworm)
for deb in "$out"/debs/*.deb; do dpkg -x "$deb" "$out/root"; done
lib="$out/root/usr/lib/x86_64-linux-gnu"
# The driver's own libraries (LLVM, xcb, wayland) are on most machines that have a desktop package such
# as chromium; where some are missing, bring them too.
if LD_LIBRARY_PATH="$lib" ldd "$lib/libvulkan_lvp.so" | grep -q 'not found'; then
  (cd "$out/debs" && apt-get "${apt_opts[@]}" download -qq libllvm15/bookworm libz3-4/bookworm libedit2/bookworm libxml2/bookworm libicu72/bookworm \
    libxcb1/bookworm libxcb-randr0/bookworm libx11-xcb1/bookworm libxcb-dri3-0/bookworm libxcb-present0/bookworm libxcb-xfixes0/bookworm \
    libxcb-sync1/bookworm libxcb-shm0/bookworm libxshmfence1/bookworm libwayland-client0/bookworm libxau6/bookworm libxdmcp6/bookworm \
    libbsd0/bookworm libmd0/bookworm libffi8/bookworm)
  for deb in "$out"/debs/*.deb; do dpkg -x "$deb" "$out/root"; done
  if LD_LIBRARY_PATH="$lib" ldd "$lib/libvulkan_lvp.so" | grep 'not found'; then echo "lavapipe still lacks the libraries above" >&2; exit 1; fi
fi
sed "s#\"libvulkan_lvp.so\"#\"$lib/libvulkan_lvp.so\"#" "$out/root/usr/share/vulkan/icd.d/lvp_icd.json" >"$out/lvp_icd.json"
echo "lavapipe in $out: LD_LIBRARY_PATH=$lib VK_ICD_FILENAMES=$out/lvp_icd.json"
