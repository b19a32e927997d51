#!/usr/bin/env bash
# The project's test command (README): builds the workspace, runs every test as root on
# this host, then runs the cgroup-facing tests again on a pure cgroup v2 kernel in a VM
# (../shared/vm/run-in-v2-vm.sh), since this host's layout is hybrid.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: the tests need root (namespaces, cgroups, mounts): run it as root" >&2
    exit 1
fi

cargo build --workspace
cargo test --workspace

# Pure cgroup v2: the same test binaries, built above, run inside the VM.
vm=$root/../shared/vm/run-in-v2-vm.sh
if [ ! -x "$vm" ]; then
    echo "tests/run.sh: $vm is missing: cannot run the cgroup v2 tests" >&2
    exit 1
fi
v2_tests=(cgroups run supervisor)
bins=()
for t in "${v2_tests[@]}"; do
    bin=$(cargo test -p integration-tests --test "$t" --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    [ -n "$bin" ] || { echo "tests/run.sh: no test binary for $t" >&2; exit 1; }
    bins+=("$bin")
done
script=$root/target/v2-tests.sh
{
    echo 'set -e'
    for b in "${bins[@]}"; do echo "echo '== pure cgroup v2: $(basename "$b")'; $b --test-threads=1"; done
} >"$script"
echo "== running ${v2_tests[*]} in a pure cgroup v2 VM"
VM_TIMEOUT=${VM_TIMEOUT:-2400} "$vm" "$root" -- sh "$script"
