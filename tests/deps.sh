#!/usr/bin/env bash
# Installs what the tests need, where it is missing: Debian's packages (static busybox
# for the images, qemu and a Debian kernel for the pure cgroup v2 VM, zstd for the
# import tests, nftables for the network tests, runc and crun for the export tests)
# and Rust's musl target (the binaries are static).
set -euo pipefail
packages=(busybox-static qemu-system-x86 linux-image-amd64 zstd util-linux nftables iproute2 runc crun)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "tests/deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    rustup target add x86_64-unknown-linux-musl
fi
