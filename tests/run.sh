#!/usr/bin/env bash
# The project's test command (README). Builds the workspace and runs every test as
# root on this host, then runs the cgroup-facing tests on the two other cgroup layouts:
# pure v1 (this host's v1 hierarchies, with the cgroup2 mount taken away in a private
# mount namespace) and pure v2 (a VM booted with ../shared/vm/run-in-v2-vm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: the tests need root (namespaces, cgroups, mounts): run it as root" >&2
    exit 1
fi

bash tests/deps.sh
cargo build --workspace
cargo test --workspace

# The cgroup, freeze, lifecycle and network tests, and the escape tests (every
# attack is tried on all three layouts), as built above. (The network tests run
# in network namespaces of their own; the VM's kernel loads veth, bridge and
# nf_tables modules on demand.)
layout_tests=(cgroups run supervisor escape network operate)
bins=()
for t in "${layout_tests[@]}"; do
    bin=$(cargo test -p integration-tests --test "$t" --no-run --message-format=json 2>/dev/null | grep '"test":true' |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    [ -n "$bin" ] || { echo "tests/run.sh: no test binary for $t" >&2; exit 1; }
    bins+=("$bin")
done

# Pure v1: only where this host has v1 controllers (hybrid or v1).
if grep -q ' - cgroup cgroup ' /proc/self/mountinfo; then
    for b in "${bins[@]}"; do
        echo "== pure cgroup v1 (cgroup2 unmounted in a private mount namespace): $(basename "$b")"
        unshare --mount --propagation private sh -c \
            'for m in $(findmnt -n -t cgroup2 -o TARGET); do umount "$m"; done; exec "$0"' "$b"
    done
else
    echo "tests/run.sh: this host has no cgroup v1 hierarchy: cannot run the pure v1 layout" >&2
    exit 1
fi

# Pure v2: the same test binaries, run inside the VM.
vm=$root/../shared/vm/run-in-v2-vm.sh
if [ ! -x "$vm" ]; then
    echo "tests/run.sh: $vm is missing: cannot run the pure cgroup v2 layout" >&2
    exit 1
fi
script=$root/target/v2-tests.sh
{
    echo 'set -e'
    echo ". $root/tests/vm-tmp-ext4.sh"
    for b in "${bins[@]}"; do
        echo "echo '== pure cgroup v2 (VM): $(basename "$b")'; $b --test-threads=2"
    done
} >"$script"
echo "== booting a pure cgroup v2 VM for: ${layout_tests[*]}"
VM_TIMEOUT=${VM_TIMEOUT:-2400} "$vm" "$root" -- sh "$script"
