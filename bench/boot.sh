#!/usr/bin/env bash
# Boot to all services running (README, Benchmarks): the same 10 services (busybox
# `sleep`, each writing a marker to /dev/kmsg once it runs) booted in the same qemu
# VM (tests/boot/boot-vm.sh: Debian's kernel, an initramfs) under three PID 1s:
#   - supervisor boot: each service in its own namespaces (pid, mount, uts, ipc, net,
#     cgroup), busybox image as an overlay root, a cgroup with a memory limit;
#   - BusyBox init (inittab `once` lines): plain processes;
#   - Debian's finit 4.2 (`service` lines in /etc/finit.d): plain processes.
# The figure is the kernel's timestamp of the last marker minus that of "Run /sbin/init
# as init process" (printk.time=1): from the kernel's handoff to all services running.
# Also PID 1's VmRSS once everything runs (read by an eleventh process from
# /proc/1/status). finit and its libraries are downloaded (apt-get download) and
# unpacked into bench/.cache, never installed.
#
#   bash bench/boot.sh [RUNS]      (default 3 boots of each)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
n=10
cache=$PWD/bench/.cache/boot
mkdir -p "$cache"
work=$(mktemp -d /tmp/bench-boot.XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p supervisor -p init
bindir=$PWD/target/x86_64-unknown-linux-musl/release

# finit and the libraries it links (Debian 12's), unpacked; glibc from this (Debian 12) host.
finit_dir=$cache/finit-root
if [ ! -x "$finit_dir/sbin/finit" ]; then
    rm -rf "$finit_dir" "$cache/debs" && mkdir -p "$finit_dir" "$cache/debs"
    (cd "$cache/debs" && apt-get download finit libite5 libuev3 >/dev/null)
    for deb in "$cache"/debs/*.deb; do dpkg-deb -x "$deb" "$finit_dir"; done
    # Debian's examples (gettys, acpid, sshd, rsyslogd) are not the services measured.
    rm -f "$finit_dir"/etc/finit.d/*.conf
    for lib in $(ldd "$finit_dir/sbin/finit" | awk '/=> \// { print $3 } /ld-linux/ { print $1 }'); do
        case $lib in "$finit_dir"/*) continue ;; esac
        mkdir -p "$finit_dir$(dirname "$lib")"
        cp -L "$lib" "$finit_dir$lib"
    done
fi

# The services' scripts, in every initramfs (EXTRA_ROOT): a marker in the kernel's log
# (stamped by the kernel) once the service runs; the probe reads PID 1's RSS, then
# powers off (busybox's poweroff: SIGUSR2 to PID 1, which all three take as poweroff).
extra=$work/extra
mkdir -p "$extra/usr/local/bin" "$extra/etc/finit.d"
cat >"$extra/usr/local/bin/svc" <<'SVC'
#!/bin/sh
echo "boot-marker-$1" >/dev/kmsg
exec sleep 100000
SVC
cat >"$extra/usr/local/bin/probe" <<'PROBE'
#!/bin/sh
sleep 5
# smaps_rollup walks the page tables (VmRSS is synced lazily, off by up to 64
# pages per thread); the binaries sit on tmpfs, so their pages count as shared memory.
echo "pid1-rss $(grep -E '^(Rss|Pss|Anonymous|Shared_Clean|Private_Clean):' /proc/1/smaps_rollup | tr -s '\t\n ' ' ')" >/dev/kmsg
sleep 1
poweroff
PROBE
chmod +x "$extra"/usr/local/bin/*

# supervisor: the services in containers (the scripts bound in read-only).
{
    echo "system:"
    echo "  modules: [/lib/modules/overlay.ko]"
    echo "services:"
    for i in $(seq 1 $n); do
        echo "  s$i:"
        echo "    image: busybox"
        echo "    limits: {memory: 16M}"
        echo "    devices: [/dev/kmsg]"
        echo "    mounts: [{source: /usr/local/bin, target: /usr/local/bin, readonly: true}]"
        echo "    command: [/usr/local/bin/svc, \"$i\"]"
    done
    echo "  probe:"
    echo "    image: busybox"
    echo "    namespaces: [mount]"
    echo "    cap_add: [SYS_PTRACE]    # to read PID 1's smaps_rollup"
    echo "    devices: [/dev/kmsg]"
    echo "    mounts: [{source: /usr/local/bin, target: /usr/local/bin, readonly: true}]"
    echo "    restart: never"
    echo "    depends_on: [$(seq -s, -f 's%g' 1 $n | sed 's/,/, /g')]"
    echo "    command: [/usr/local/bin/probe]"
} >"$work/services.yaml"

# BusyBox init: the basic mounts in sysinit, then the services as plain processes.
{
    echo "::sysinit:/bin/mount -t proc proc /proc"
    echo "::sysinit:/bin/mount -t sysfs sysfs /sys"
    echo "::sysinit:/bin/mount -t devtmpfs devtmpfs /dev"
    for i in $(seq 1 $n); do echo "::once:/usr/local/bin/svc $i"; done
    echo "::once:/usr/local/bin/probe"
} >"$extra/etc/inittab"

# finit: the services as `service` lines (finit mounts the basic file systems itself).
for i in $(seq 1 $n); do
    # (:ID: instances of one command; without it each line replaces the last.)
    echo "service :$i [2345] /usr/local/bin/svc $i -- s$i" >"$extra/etc/finit.d/s$i.conf"
done
echo "task [2345] name:probe /usr/local/bin/probe -- probe" >"$extra/etc/finit.d/probe.conf"

# Seconds from the handoff to the last marker, and PID 1's RSS, of one console.
measure() {
    awk -v n=$n '
        /Run \/sbin\/init as init process/ { line = $0; sub(/^\[ */, "", line); split(line, f, "]"); start = f[1] + 0 }
        /boot-marker-/ { line = $0; sub(/^\[ */, "", line); split(line, f, "]"); t = f[1] + 0; seen++; if (t > last) last = t }
        /pid1-rss/ { for (i = 1; i <= NF; i++) { if ($i == "Rss:") rss = $(i + 1); if ($i == "Anonymous:") anon = $(i + 1) } }
        END { if (seen < n) { print "incomplete"; exit } printf "%.3f %s %s\n", last - start, rss, anon }
    ' "$1"
}

echo "boot to $n services running, from the kernel's handoff (s); PID 1's Rss and Anonymous (KiB); $runs boots each"
for mode in supervisor busybox finit; do
    for r in $(seq 1 "$runs"); do
        INIT_MODE=$mode FINIT_DIR=$finit_dir EXTRA_ROOT=$extra BOOT_TIMEOUT=600 \
            bash tests/boot/boot-vm.sh "$bindir" "$work/services.yaml" \
            "$work/console-$mode-$r" "printk.devkmsg=on" >/dev/null 2>&1 || true
        echo "$mode run $r: $(measure "$work/console-$mode-$r")"
        cp "$work/console-$mode-$r" "$cache/console-$mode-$r.txt"
    done
done
