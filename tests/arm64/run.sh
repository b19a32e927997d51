#!/usr/bin/env bash
# The arm64 stage of the tests (README, tests/arm64/README.md): builds init and supervisor
# for aarch64-unknown-linux-musl, boots Debian's arm64 kernel in qemu-system-aarch64 (-M virt,
# software emulation) with an initramfs that holds busybox (and bash), the binaries and
# the init integration tests built for aarch64, and runs there, on pure cgroup v2:
#   1. the init integration tests (signals, reaping, exit codes, process groups);
#   2. one `supervisor run` of a busybox service (namespaces, cgroup limits, exit status).
# Prints the release binaries' sizes for both architectures. Exits non-zero if anything fails.
# Nothing is installed on the host: tests/deps.sh downloads the arm64 kernel and busybox
# packages and unpacks them into ARM64_CACHE.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
target=aarch64-unknown-linux-musl
cache=${ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/supervisor-arm64}
timeout_s=${ARM64_TIMEOUT:-600}
work=$root/target/arm64-vm

fail() { echo "tests/arm64/run.sh: $*" >&2; exit 1; }

command -v qemu-system-aarch64 >/dev/null ||
    fail "qemu-system-aarch64 is missing: run tests/deps.sh (Debian's qemu-system-arm)"
kernel=$(ls "$cache"/boot/ 2>/dev/null | grep '^vmlinuz-.*-arm64$' | sort -V | tail -n 1 || true)
[ -n "$kernel" ] || fail "no arm64 kernel in $cache/boot: run tests/deps.sh"
kernel=$cache/boot/$kernel
busybox=$cache/bin/busybox
[ -x "$busybox" ] || busybox=$cache/usr/bin/busybox
[ -x "$busybox" ] || fail "no arm64 busybox in $cache/bin: run tests/deps.sh"
rustup target list --installed | grep -qx $target ||
    fail "the $target target is missing: rustup target add $target (tests/deps.sh does)"

echo "== arm64: building init and supervisor for $target"
cargo build --release --target $target -p init -p supervisor
cargo build --release -p init -p supervisor
tests_bin=$(cargo test --target $target -p integration-tests --test init --no-run \
    --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -n "$tests_bin" ] || fail "no aarch64 test binary for tests/init.rs"

# Release sizes, for the README's table.
size_kib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1024 }'; }
printf '%-12s %10s %10s\n' binary 'x86_64 KiB' 'arm64 KiB'
for b in init supervisor; do
    printf '%-12s %10s %10s\n' $b "$(size_kib target/x86_64-unknown-linux-musl/release/$b)" \
        "$(size_kib target/$target/release/$b)"
done

# The guest's root: busybox, the binaries, the tests and the guest script, in a cpio
# archive (uncompressed: decompressing under emulation costs more than reading it).
rm -rf "$work" && mkdir -p "$work/root"/{bin,opt/bin,opt/tests,etc}
cp "$busybox" "$work/root/bin/busybox"
# bash and the C library it needs, for init's job-control test.
[ -x "$cache/bin/bash" ] || fail "no arm64 bash in $cache/bin: run tests/deps.sh"
cp "$cache/bin/bash" "$work/root/bin/bash"
cp -a "$cache/lib" "$work/root/lib"
cp target/$target/release/init target/$target/release/supervisor "$work/root/opt/bin/"
cp "$tests_bin" "$work/root/opt/tests/init"
cp tests/arm64/guest-init.sh "$work/root/init"
cp tests/arm64/guest-tests.sh "$work/root/guest-tests.sh"
cp tests/arm64/service.yaml "$work/root/etc/service.yaml"
chmod 755 "$work/root/init"
nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
echo "$nonce" >"$work/root/etc/nonce"
(cd "$work/root" && find . | busybox cpio -o -H newc 2>/dev/null) >"$work/initrd.cpio"

echo "== arm64: booting $(basename "$kernel") in qemu-system-aarch64 (TCG), limit ${timeout_s}s"
start=$(date +%s)
set +e
timeout --kill-after=5 "$timeout_s" qemu-system-aarch64 -M virt -cpu cortex-a57 -smp 2 -m 1536M \
    -accel tcg,thread=multi -nodefaults -no-reboot -nographic -serial mon:stdio \
    -kernel "$kernel" -initrd "$work/initrd.cpio" \
    -append "console=ttyAMA0 panic=-1 quiet cgroup_no_v1=all rdinit=/init" \
    </dev/null | sed -u 's/\r$//' | tee "$work/console.log"
qemu_status=${PIPESTATUS[0]}
set -e
echo "== arm64: $(( $(date +%s) - start ))s in the VM"
[ "$qemu_status" = 124 ] && fail "the VM ran longer than ${timeout_s}s (ARM64_TIMEOUT)"
status=$(sed -n "s/^arm64-guest-status-$nonce=\([0-9]*\)$/\1/p" "$work/console.log" | tail -n 1)
[ -n "$status" ] || fail "the VM reported no status (qemu exited $qemu_status): see $work/console.log"
[ "$status" = 0 ] || fail "the tests in the arm64 VM failed (status $status): see $work/console.log"
echo "== arm64: passed"
