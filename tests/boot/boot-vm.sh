#!/usr/bin/env bash
# Boots the supervisor as PID 1 of a throw-away qemu VM and writes its serial
# console to a file (tests/boot.rs and bench/boot.sh read it). See tests/boot/README.md.
#
#   tests/boot/boot-vm.sh BINDIR CONFIG CONSOLE [KERNEL_ARGS] [-- QEMU_ARGS...]
#
# BINDIR holds the static `supervisor` and `init`; CONFIG becomes
# /etc/supervisor/services.yaml. The initramfs: /usr/bin/supervisor (and /sbin/init,
# a symlink to it), /usr/bin/init (the services' init), busybox (for the services'
# host-root commands), a busybox image in /var/lib/supervisor/images, and the kernel's
# overlay and i6300esb modules and their dependencies (watchdog.ko) in /lib/modules.
# INIT_MODE=busybox|finit boots the same initramfs under another init (bench/boot.sh),
# finit from FINIT_DIR (an unpacked .deb tree); EXTRA_ROOT is a directory copied over
# the initramfs (an /etc/inittab, /etc/finit.d, scripts).
# The exit status is qemu's; BOOT_TIMEOUT (seconds, default 600) bounds the run (124).
set -euo pipefail

me=tests/boot/boot-vm.sh
fail() { echo "$me: $*" >&2; exit 2; }
[ $# -ge 3 ] || fail "usage: $me BINDIR CONFIG CONSOLE [KERNEL_ARGS] [-- QEMU_ARGS...]"
bindir=$(cd "$1" && pwd -P); config=$2; console=$3; shift 3
kargs=
if [ $# -gt 0 ] && [ "$1" != -- ]; then kargs=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = -- ] && shift
mode=${INIT_MODE:-supervisor}

qemu=$(command -v qemu-system-x86_64) || fail "qemu-system-x86_64 missing: run tests/deps.sh"
busybox=$(command -v busybox) || fail "busybox missing: run tests/deps.sh"
ldd "$busybox" >/dev/null 2>&1 && fail "$busybox is not static: install busybox-static"
kernel=${VM_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[ -r "$kernel" ] || fail "no kernel in /boot: install linux-image-amd64 (tests/deps.sh)"
kver=${kernel##*/vmlinuz-}
accel=(-accel tcg,thread=multi -cpu max)
if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then
    accel=(-accel kvm -cpu host)
fi

tmp=$(mktemp -d /tmp/boot-vm.XXXXXX)
cleanup() {
    if [ -s "$tmp/qemu.pid" ]; then kill "$(cat "$tmp/qemu.pid")" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

rd=$tmp/rd
mkdir -p "$rd"/{bin,sbin,usr/bin,dev,proc,sys,run,tmp,etc/supervisor,lib/modules,var/lib/supervisor/images}
mknod -m 600 "$rd/dev/console" c 5 1
mknod -m 666 "$rd/dev/null" c 1 3
cp "$bindir/supervisor" "$bindir/init" "$rd/usr/bin/"
cp "$busybox" "$rd/bin/busybox"
for a in sh cat echo sleep ps grep wc mount poweroff reboot halt ls hostname; do ln -s busybox "$rd/bin/$a"; done
cp "$config" "$rd/etc/supervisor/services.yaml"
# Each module and what it depends on, as /lib/modules/NAME.ko (the service list loads them).
for ko in $(for m in overlay i6300esb; do
    modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++'); do
    out=$rd/lib/modules/$(basename "${ko%.xz}" | sed 's/\.zst$//')
    case $ko in
        *.xz) xz -dc "$ko" >"$out" ;;
        *.zst) zstd -qdc "$ko" >"$out" ;;
        *) cp "$ko" "$out" ;;
    esac
done
"$bindir/supervisor" image build-busybox busybox --images-dir "$rd/var/lib/supervisor/images" >/dev/null
case $mode in
    supervisor) ln -s ../usr/bin/supervisor "$rd/sbin/init" ;;
    busybox) ln -s ../bin/busybox "$rd/sbin/init" ;;
    finit)
        [ -d "${FINIT_DIR:-}" ] || fail "FINIT_DIR: an unpacked finit package tree"
        cp -a "$FINIT_DIR"/. "$rd/"
        ln -sf /sbin/finit "$rd/sbin/init" ;;
    *) fail "INIT_MODE: supervisor, busybox or finit" ;;
esac
# Extra files (an inittab, finit.d, scripts) over the initramfs.
if [ -n "${EXTRA_ROOT:-}" ]; then cp -a "$EXTRA_ROOT"/. "$rd/"; fi
(cd "$rd" && find . | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) >"$tmp/initrd" || fail "cpio failed"

set +e
timeout --kill-after=10 "${BOOT_TIMEOUT:-600}" "$qemu" -machine q35 "${accel[@]}" -m "${VM_MEM:-512M}" \
    -smp "${VM_CPUS:-2}" -nodefaults -no-user-config -display none -no-reboot \
    -serial "file:$console" -pidfile "$tmp/qemu.pid" \
    -kernel "$kernel" -initrd "$tmp/initrd" \
    -append "console=ttyS0 printk.time=1 panic=-1 rdinit=/sbin/init mitigations=off $kargs" \
    "$@" </dev/null
status=$?
set -e
exit "$status"
