#!/usr/bin/env bash
# Runs a command in a throw-away qemu VM whose only cgroup hierarchy is cgroup2 (a pure
# v2 host), for the tests' pure-v2 layout pass. See tests/vm/README.md.
#
#   tests/vm/run-in-v2-vm.sh DIR -- COMMAND [ARG...]
#
# DIR (the checkout) is shared read-write at its own path; the host's / is the guest's
# read-only lower layer, so the host's binaries and toolchains run unchanged. COMMAND
# runs as root in DIR with cgroup2 on /sys/fs/cgroup, every controller enabled for the
# root's children. The exit status is COMMAND's; 124 when VM_TIMEOUT (seconds, default
# 1800) runs out; 125 when the VM never reported one (boot failure, panic).
# VM_MEM (default 2G) and VM_CPUS (default 2) size the VM; VM_KERNEL picks a
# /boot/vmlinuz-* other than the newest.
set -euo pipefail

me=tests/vm/run-in-v2-vm.sh
fail() { echo "$me: $*" >&2; exit 2; }

[ $# -ge 3 ] && [ "$2" = -- ] || fail "usage: $me DIR -- COMMAND [ARG...]"
dir=$(cd "$1" && pwd -P) || fail "not a directory: $1"
shift 2
[ "$dir" != / ] || fail "DIR must not be /"
timeout_s=${VM_TIMEOUT:-1800}
mem=${VM_MEM:-2G}
cpus=${VM_CPUS:-2}

qemu=$(command -v qemu-system-x86_64) || fail "qemu-system-x86_64 missing: run tests/deps.sh"
busybox=$(command -v busybox) || fail "busybox missing: run tests/deps.sh"
ldd "$busybox" >/dev/null 2>&1 && fail "$busybox is not static: install busybox-static"
kernel=${VM_KERNEL:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
[ -r "$kernel" ] || fail "no kernel in /boot: install linux-image-amd64 (tests/deps.sh)"
kver=${kernel##*/vmlinuz-}
[ -d "/lib/modules/$kver" ] || fail "no /lib/modules/$kver for $kernel"

# KVM only where it is backed by hardware virtualisation; otherwise emulate (TCG).
accel=(-accel tcg,thread=multi -cpu max)
if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then
    accel=(-accel kvm -cpu host)
fi

tmp=$(mktemp -d /tmp/v2-vm.XXXXXX)
cleanup() {
    # Only the qemu this script started, by the pid qemu wrote.
    if [ -s "$tmp/qemu.pid" ]; then kill "$(cat "$tmp/qemu.pid")" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# The initramfs: static busybox, the modules for virtio-pci, 9p and overlayfs (with
# their dependencies, in load order), two init stages and the command.
rd=$tmp/rd
mkdir -p "$rd/bin" "$rd/modules" "$rd/proc" "$rd/sys" "$rd/dev" "$rd/host" "$rd/rw" "$rd/root"
cp "$busybox" "$rd/bin/busybox"
for a in sh mount mkdir cat sed insmod switch_root poweroff ln chmod; do ln -s busybox "$rd/bin/$a"; done
n=0
for ko in $(for m in virtio_pci 9pnet_virtio 9p overlay virtio_blk ext4; do
    modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++'); do
    n=$((n + 1))
    out=$rd/modules/$(printf %02d $n).ko
    case $ko in
        *.xz) xz -dc "$ko" >"$out" ;;
        *.zst) zstd -qdc "$ko" >"$out" ;;
        *) cp "$ko" "$out" ;;
    esac
done
[ "$n" -gt 0 ] || fail "no modules found for $kver"

nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
# A scratch disk (sparse, ext4) for the guest's /tmp and /var/tmp: a real disk
# filesystem, as on a host (user xattrs, an overlayfs upper layer), not the root overlay.
truncate -s 8G "$tmp/scratch.img"
mkfs.ext4 -q -F "$tmp/scratch.img" || fail "mkfs.ext4 failed (install e2fsprogs)"

quote() { printf "'%s' " "${1//\'/\'\\\'\'}"; }
{
    printf 'cd %s || exit 125\nexec ' "$(quote "$dir")"
    for a in "$@"; do quote "$a"; done
    echo
} >"$rd/command.sh"

# Stage 1 (PID 1 of the initramfs): the root is an overlay of the host's / (read-only,
# over 9p) and a tmpfs; /tmp and /var/tmp are on the scratch disk; DIR is mounted
# read-write at its own path; cgroup2 only.
cat >"$rd/init" <<INIT
#!/bin/sh
bail() { echo "vm: \$*"; echo "@@exit-$nonce=125@@"; poweroff -f; }
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in /modules/*.ko; do insmod "\$m" || echo "vm: insmod \$m failed"; done
p9=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o \$p9,ro,cache=loose host /host || bail "no host root over 9p"
mount -t tmpfs tmpfs /rw && mkdir /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /root || bail overlay
for d in proc sys dev tmp run; do mkdir -p "/root/\$d"; done
mount -t proc proc /root/proc; mount -t sysfs sys /root/sys; mount -t devtmpfs dev /root/dev
mkdir -p /root/dev/pts /root/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /root/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /root/dev/shm
mkdir -p /scratch /root/var/tmp
mount -t ext4 /dev/vda /scratch || bail "no scratch disk"
mkdir -p /scratch/tmp /scratch/var-tmp && chmod 1777 /scratch/tmp /scratch/var-tmp
mount -o bind /scratch/tmp /root/tmp
mount -o bind /scratch/var-tmp /root/var/tmp
ln -s /proc/self/fd /root/dev/fd
for n in 0:stdin 1:stdout 2:stderr; do ln -s "fd/\${n%%:*}" "/root/dev/\${n#*:}"; done
mount -t tmpfs -o mode=0755 tmpfs /root/run
mkdir -p /root$dir
mount -t 9p -o \$p9,cache=mmap work /root$dir || bail "no $dir over 9p"
mount -t cgroup2 -o nsdelegate cgroup2 /root/sys/fs/cgroup || bail "no cgroup2"
sed 's/\([a-z_]*\)/+\1/g' /root/sys/fs/cgroup/cgroup.controllers >/root/sys/fs/cgroup/cgroup.subtree_control
mkdir -p /root/run/vm && cp /bin/busybox /command.sh /stage2 /root/run/vm/
# switch_root, not chroot: a chrooted process may not create user namespaces.
exec switch_root /root /run/vm/busybox sh /run/vm/stage2
INIT
# Stage 2 (PID 1 of the final root): the command with a clean environment, then the
# status behind a marker only this run knows, so the command's output cannot fake it.
cat >"$rd/stage2" <<STAGE2
/usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root TERM=dumb LANG=C.UTF-8 /bin/sh /run/vm/command.sh </dev/null
echo "@@exit-$nonce=\$?@@"
/run/vm/busybox sync
/run/vm/busybox poweroff -f
STAGE2
chmod +x "$rd/init"
(cd "$rd" && find . | "$rd/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null) >"$tmp/initrd" ||
    fail "cpio failed"

echo "$me: booting $kver (${accel[1]%%,*}) for: $*" >&2
set +e
timeout --kill-after=10 "$timeout_s" "$qemu" -machine q35 "${accel[@]}" -m "$mem" -smp "$cpus" \
    -nodefaults -no-user-config -display none -no-reboot -serial stdio -pidfile "$tmp/qemu.pid" \
    -kernel "$kernel" -initrd "$tmp/initrd" \
    -append "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init cgroup_no_v1=all mitigations=off" \
    -virtfs "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$dir,mount_tag=work,security_model=none,multidevs=remap" \
    -drive "file=$tmp/scratch.img,format=raw,if=virtio,cache=unsafe" \
    -device virtio-rng-pci </dev/null | sed -u 's/\r$//' | tee "$tmp/console" | grep --line-buffered -v -e "^@@exit-$nonce=" -e '] reboot: Power down$'
qemu_status=${PIPESTATUS[0]}
set -e

status=$(sed -n "s/^.*@@exit-$nonce=\([0-9]*\)@@.*$/\1/p" "$tmp/console" | tail -n 1)
if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
    echo "$me: VM_TIMEOUT=${timeout_s}s ran out" >&2
    exit 124
fi
if [ -z "$status" ]; then
    echo "$me: the VM ended (qemu status $qemu_status) without the command's status" >&2
    exit 125
fi
exit "$status"
