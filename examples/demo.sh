#!/usr/bin/env bash
# Sets up and starts the demo appliance on a fresh Debian machine (as root):
# installs Debian's busybox-static and nftables (the web service's published
# port), builds the two static binaries, builds the busybox image, and runs
# the daemon in the foreground (Ctrl-C stops it all).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "examples/demo.sh: run it as root (namespaces, cgroups, mounts)" >&2
    exit 1
fi
if ! command -v busybox >/dev/null || ! busybox --list >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static
fi
if ! command -v nft >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables
fi
rustup target add x86_64-unknown-linux-musl
cargo build --release
bin=target/x86_64-unknown-linux-musl/release
config=examples/appliance.yaml
if ! "$bin/supervisor" image ls -c "$config" | grep -q '^busybox '; then
    "$bin/supervisor" image build-busybox busybox -c "$config"
fi
"$bin/supervisor" check -c "$config"
echo "demo: starting the appliance; in another terminal: $bin/supervisor status -c $config"
exec "$bin/supervisor" daemon -c "$config"
