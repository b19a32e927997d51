#!/usr/bin/env bash
# Installs what the tests need, where it is missing: Debian's packages (static busybox
# for the images, qemu and a Debian kernel for the pure cgroup v2 VM, zstd for the
# import tests, nftables and iproute2 for the network tests, runc and crun for the export tests, qemu-system-arm for the
# arm64 stage) and Rust's musl targets (the binaries are static). tests/vm/README.md
# explains the VM. For the arm64 stage it also downloads Debian's arm64 kernel and static
# busybox and unpacks them into a cache (they are never installed on this host).
set -euo pipefail
packages=(busybox-static qemu-system-x86 linux-image-amd64 kmod e2fsprogs zstd util-linux nftables iproute2 runc crun qemu-system-arm)
# The arm64 guest (tests/arm64/run.sh): unpacked into arm64_cache, not installed. bash
# (with its libraries) is for init's job-control test; busybox is everything else.
arm64_packages=(linux-image-arm64 busybox-static bash libc6 libtinfo6)
arm64_cache=${ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/supervisor-arm64}
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
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    if ! rustup target list --installed | grep -qx $target; then
        rustup target add $target
    fi
done
# The arm64 packages come from apt's arm64 lists, fetched for this command only: no
# `dpkg --add-architecture`, nothing foreign is installed. The kernel metapackage names
# the versioned image package, which holds the kernel.
if [ "$(cat "$arm64_cache/packages" 2>/dev/null)" != "${arm64_packages[*]}" ]; then
    echo "tests/deps.sh: downloading ${arm64_packages[*]} (arm64) into $arm64_cache"
    arch=(-o APT::Architectures::=amd64 -o APT::Architectures::=arm64)
    apt-get "${arch[@]}" update -qq
    debs=()
    for p in "${arm64_packages[@]}"; do
        versioned=$(apt-cache "${arch[@]}" depends "$p:arm64" |
            sed -n 's/^ *Depends: \(linux-image-[^:]*\):arm64$/\1/p' | head -n 1)
        debs+=("${versioned:-$p}:arm64")
    done
    download=$(mktemp -d)
    (cd "$download" && apt-get "${arch[@]}" download "${debs[@]}" 2>/dev/null)
    # Replaced whole, but only a directory this script made (it has the stamp) or none.
    if [ -e "$arm64_cache" ] && [ ! -e "$arm64_cache/packages" ]; then
        echo "tests/deps.sh: $arm64_cache exists and is not an arm64 cache of ours: set ARM64_CACHE" >&2
        exit 1
    fi
    rm -rf "$arm64_cache" && mkdir -p "$arm64_cache"
    for deb in "$download"/*.deb; do
        dpkg-deb -x "$deb" "$arm64_cache"
    done
    rm -rf "$download" "$arm64_cache/lib/modules" "$arm64_cache/usr/share"
    echo "${arm64_packages[*]}" >"$arm64_cache/packages"
fi
