#!/usr/bin/env bash
# What the default hardening costs a start: start-to-exit of `supervisor run`
# of one service running /bin/true (all five namespaces, busybox rootfs, a
# cgroup with limits), with
#   the defaults        (Docker's 14 capabilities, the default seccomp filter)
#   seccomp: unconfined (the capabilities dropped, no filter)
#   privileged: true    (every capability, no filter)
# interleaved round-robin, back to back, so that all share the same noise.
# Prints medians and p90 in ms, and each row's difference from `privileged`.
#
# Usage (as root):  bench/hardening.sh [RUNS]      (default 60 runs per row)
# Binaries: BIN_DIR (default target/x86_64-unknown-linux-musl/release; build them
# with `cargo build --release -p supervisor -p init`).
set -euo pipefail

runs=${1:-60}
here=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${BIN_DIR:-$here/target/x86_64-unknown-linux-musl/release}
supervisor=$bin_dir/supervisor

die() { echo "hardening.sh: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "run as root (namespaces, cgroups)"
[[ -x $supervisor && -x $bin_dir/init ]] ||
    die "$bin_dir/{supervisor,init} missing: cargo build --release -p supervisor -p init"
[[ -x /bin/busybox ]] || die "/bin/busybox is not installed (busybox-static)"

work=$(mktemp -d /tmp/bench-hardening.XXXXXX)
tag=bench-hardening-$$
cgroup_roots=$(awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo)
cleanup() {
    for root in $cgroup_roots; do
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
ln -s busybox "$rootfs/bin/true"
ln -s busybox "$rootfs/bin/sh"
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"

service() { # name extra-key
    cat <<YAML
  $1:
    image: $rootfs
    command: [/bin/true]
    readonly_rootfs: true
    limits: {memory: 64M, pids: 100}
    $2
YAML
}
{
    echo "state_dir: $work/state"
    echo "images_dir: $work/images"
    echo "cgroup_parent: $tag"
    echo "services:"
    service defaults ""
    service unconfined "seccomp: unconfined"
    service privileged "privileged: true"
} >"$work/services.yaml"
"$supervisor" check -c "$work/services.yaml" >/dev/null

rows=(defaults unconfined privileged)
declare -A label=(
    [defaults]="defaults (caps + seccomp)"
    [unconfined]="seccomp: unconfined"
    [privileged]="privileged: true"
)
# The privileged row's warning goes to stderr: keep it out of the table.
one() { "$supervisor" run -c "$work/services.yaml" "$1" >/dev/null 2>&1; }
for row in "${rows[@]}"; do one "$row"; done # warm up caches once
: >"$work/times.txt"
for ((i = 0; i < runs; i++)); do
    for row in "${rows[@]}"; do
        t0=${EPOCHREALTIME/./}
        one "$row"
        t1=${EPOCHREALTIME/./}
        echo "$row $((t1 - t0))" >>"$work/times.txt" # microseconds
    done
done

stat() { # row -> "median p90" in ms
    awk -v r="$1" '$1 == r { print $2 }' "$work/times.txt" | sort -n | awk '
        { v[NR] = $1 }
        END { m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.5)]; printf "%.3f %.3f", m / 1000, p / 1000 }'
}
read -r base _ <<<"$(stat privileged)"
echo "start-to-exit of /bin/true under supervisor run, $runs runs per row, $(uname -r), $(nproc) CPUs"
printf '%-28s %14s %10s %18s\n' "" "median ms" "p90 ms" "vs privileged ms"
for row in "${rows[@]}"; do
    read -r m p <<<"$(stat "$row")"
    printf '%-28s %14s %10s %18s\n' "${label[$row]}" "$m" "$p" \
        "$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%+.3f", a - b }')"
done
