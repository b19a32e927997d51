#!/usr/bin/env bash
# The project's test command (README). Runs every test as root on this host (`cargo
# test` builds the binaries the tests run: tests/support), then runs the cgroup-facing
# tests again on the two other cgroup layouts: pure v1 (this host's v1 hierarchies, with
# the cgroup2 mount taken away in a private mount namespace) and pure v2 (a VM booted by
# tests/vm/run-in-v2-vm.sh). Each of those passes sets EXPECT_CGROUP_LAYOUT, which the
# cgroups and supervisor tests check against the layout they detect.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: the tests need root (namespaces, cgroups, mounts): run it as root" >&2
    exit 1
fi

bash tests/deps.sh
cargo test --workspace

# The path of the test binary `cargo test` built for tests/NAME.rs.
test_binary() {
    local bin
    bin=$(cargo test -p integration-tests --test "$1" --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep "/deps/$1-" | tail -n 1)
    [ -n "$bin" ] || { echo "tests/run.sh: no test binary for $1" >&2; exit 1; }
    echo "$bin"
}

# The cgroup, freeze, lifecycle and network tests, and the escape tests (every
# attack is tried on all three layouts). (The network tests run in network
# namespaces of their own; the VM's kernel loads veth, bridge and nf_tables
# modules on demand.)
layout_tests=(cgroups run supervisor escape network systemd export operate adopt health readiness events)

# Pure v1: only where this host has v1 controllers (hybrid or v1).
if ! grep -q ' - cgroup cgroup ' /proc/self/mountinfo; then
    echo "tests/run.sh: this host has no cgroup v1 hierarchy: cannot run the pure v1 layout" >&2
    exit 1
fi
for t in "${layout_tests[@]}"; do
    bin=$(test_binary "$t")
    echo "== pure cgroup v1 (cgroup2 unmounted in a private mount namespace): $t"
    # Rounds: unmounting the top of a stack of mounts on one target may uncover another.
    EXPECT_CGROUP_LAYOUT=v1 unshare --mount --propagation private sh -c '
        for round in 1 2 3 4 5 6 7 8; do
            for m in $(findmnt -n -t cgroup2 -o TARGET); do
                umount "$m" || { echo "tests/run.sh: cannot unmount $m" >&2; exit 1; }
            done
        done
        # (findmnt -t exits 0 even when nothing matches: read mountinfo.)
        if grep " - cgroup2 " /proc/self/mountinfo >&2; then
            echo "tests/run.sh: cgroup2 is still mounted (above)" >&2; exit 1
        fi
        exec "$0"' "$bin"
done

# Pure v2: the same tests, and the image and init tests (overlayfs and openat2 on the
# VM's older kernel), inside the VM.
script=$root/target/v2-tests.sh
{
    echo 'set -e'
    echo 'export EXPECT_CGROUP_LAYOUT=v2'
    for t in "${layout_tests[@]}" images init; do
        # The export tests' crun part needs pure v2 (crun refuses hybrid cgroups): here it runs.
        extra=
        [ "$t" = export ] && extra=--include-ignored
        echo "echo '== pure cgroup v2 (VM): $t'; $(test_binary "$t") --test-threads=2 $extra"
    done
} >"$script"
echo "== booting a pure cgroup v2 VM"
VM_TIMEOUT=${VM_TIMEOUT:-3600} bash tests/vm/run-in-v2-vm.sh "$root" -- sh "$script"

# arm64 (tests/arm64/README.md): init and supervisor built for aarch64-unknown-linux-musl;
# the init tests and one `supervisor run` in an emulated arm64 VM; the binaries' sizes.
arm64_stage() {
    echo "== arm64: init tests and supervisor run in a qemu-system-aarch64 VM"
    bash tests/arm64/run.sh
}
arm64_stage
