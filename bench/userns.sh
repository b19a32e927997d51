#!/usr/bin/env bash
# What a user namespace adds to starting a service: start-to-exit of
# `supervisor run` of /bin/true on a busybox image, with the default
# namespaces and with `user` added (a private id range, the image idmapped),
# over a writable layer (overlay) and with readonly_rootfs. Rows interleaved
# round-robin so that all share the same noise. Prints medians and p90 in ms,
# and what `user` adds to each.
#
# Usage (as root):  bench/userns.sh [RUNS]      (default 60 runs per row)
# Binaries: BIN_DIR (default target/x86_64-unknown-linux-musl/release; build
# them with `cargo build --release -p supervisor -p init`). The work directory
# (WORK_DIR, default /tmp) must be on a filesystem the kernel can idmap
# (ext4, xfs, btrfs; tmpfs from Linux 6.3).
set -euo pipefail

runs=${1:-60}
here=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${BIN_DIR:-$here/target/x86_64-unknown-linux-musl/release}
supervisor=$bin_dir/supervisor

die() { echo "userns.sh: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "run as root (namespaces, cgroups)"
[[ -x $supervisor && -x $bin_dir/init ]] ||
    die "$bin_dir/{supervisor,init} missing: cargo build --release -p supervisor -p init"
[[ -x /bin/busybox ]] || die "/bin/busybox is not installed"

work=$(mktemp -d "${WORK_DIR:-/tmp}/bench-userns.XXXXXX")
tag=bench-userns-$$
cleanup() {
    for root in $(awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo); do
        [[ -d $root/$tag ]] || continue
        find "$root/$tag" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
        rmdir "$root/$tag" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"

service() { # name readonly namespaces
    printf '  %s:\n    image: %s\n    command: [/bin/true]\n    readonly_rootfs: %s\n    namespaces: [%s]\n' \
        "$1" "$rootfs" "$2" "$3"
}
{
    printf 'state_dir: %s/state\nimages_dir: %s/images\ncgroup_parent: %s\nservices:\n' "$work" "$work" "$tag"
    service overlay false "pid, mount, uts, ipc, net"
    service overlay-user false "pid, mount, uts, ipc, net, user"
    service readonly true "pid, mount, uts, ipc, net"
    service readonly-user true "pid, mount, uts, ipc, net, user"
} >"$work/services.yaml"
"$supervisor" check -c "$work/services.yaml" >/dev/null

rows=(overlay overlay-user readonly readonly-user)
for row in "${rows[@]}"; do # warm up caches, and fail early
    "$supervisor" run -c "$work/services.yaml" "$row" || die "$row failed"
done
: >"$work/times.txt"
for ((i = 0; i < runs; i++)); do
    for row in "${rows[@]}"; do
        t0=${EPOCHREALTIME/./} # microseconds, without forking
        "$supervisor" run -c "$work/services.yaml" "$row"
        t1=${EPOCHREALTIME/./}
        echo "$row $((t1 - t0))" >>"$work/times.txt"
    done
done

stat() { # row -> "median p90" in ms
    awk -v r="$1" '$1 == r { print $2 }' "$work/times.txt" | sort -n | awk '
        { v[NR] = $1 }
        END { m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.5)]; printf "%.2f %.2f", m / 1000, p / 1000 }'
}
echo "supervisor run of /bin/true, $runs runs per row, $(uname -r), $(nproc) CPUs"
printf '%-16s %16s %16s\n' "" "median ms (p90)" "user adds, ms"
for row in "${rows[@]}"; do
    read -r m p <<<"$(stat "$row")"
    added=""
    if [[ $row == *-user ]]; then
        read -r base _ <<<"$(stat "${row%-user}")"
        added=$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%+.2f", a - b }')
    fi
    printf '%-16s %16s %16s\n' "$row" "$m ($p)" "$added"
done
