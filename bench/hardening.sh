#!/usr/bin/env bash
# What the default hardening costs a start: start-to-exit of `supervisor run`
# of one service running /bin/true (all five namespaces, busybox rootfs, a
# cgroup with limits), with
#   the defaults        (Docker's 14 capabilities, the default seccomp filter)
#   seccomp: unconfined (the capabilities dropped, no filter)
#   privileged: true    (every capability, no filter)
# interleaved round-robin (in a new random order each round), back to back,
# so that all share the same noise.
# Prints medians and p90 in ms of the wall time and of the CPU time, and each
# row's difference from `privileged`.
#
# Usage (as root):  bench/hardening.sh [RUNS]      (default 60 runs per row)
# On a shared, loaded machine run it as `nice -n -20 bench/hardening.sh`.
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
command -v python3 >/dev/null || die "python3 is not installed"

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
# Warm up caches once (the privileged row's warning goes to stderr).
for row in "${rows[@]}"; do "$supervisor" run -c "$work/services.yaml" "$row" >/dev/null 2>&1; done
: >"$work/times.txt"
# Wall time, and the CPU time (user + system) of the run and of everything it
# waited for (wait4's rusage, in microseconds): the CPU time is what the
# hardening itself costs, and moves less with the load of a shared machine.
python3 - "$runs" "$work/times.txt" "$supervisor" "$work/services.yaml" "${rows[@]}" <<'PY'
import os, random, subprocess, sys, time
runs, out, supervisor, config, rows = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
with open(out, "w") as f:
    for _ in range(runs):
        random.shuffle(rows)  # no row always follows the same one
        for row in rows:
            t0 = time.perf_counter_ns()
            child = subprocess.Popen([supervisor, "run", "-c", config, row],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(child.pid, 0)
            wall = (time.perf_counter_ns() - t0) / 1000
            if status != 0:
                sys.exit(f"hardening.sh: supervisor run {row} failed: status {status}")
            cpu = (usage.ru_utime + usage.ru_stime) * 1e6
            f.write(f"{row} {wall:.0f} {cpu:.0f}\n")
PY

stat() { # row column -> "median p90" in ms (column 2: wall, 3: CPU)
    awk -v r="$1" -v c="$2" '$1 == r { print $c }' "$work/times.txt" | sort -n | awk '
        { v[NR] = $1 }
        END { m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.5)]; printf "%.3f %.3f", m / 1000, p / 1000 }'
}
read -r base_wall _ <<<"$(stat privileged 2)"
read -r base_cpu _ <<<"$(stat privileged 3)"
echo "start-to-exit of /bin/true under supervisor run, $runs runs per row, $(uname -r), $(nproc) CPUs"
printf '%-28s %18s %18s %18s %18s\n' "" "wall ms" "CPU ms" "wall vs" "CPU vs"
printf '%-28s %18s %18s %18s %18s\n' "" "median (p90)" "median (p90)" "privileged, ms" "privileged, ms"
for row in "${rows[@]}"; do
    read -r wm wp <<<"$(stat "$row" 2)"
    read -r cm cp <<<"$(stat "$row" 3)"
    printf '%-28s %18s %18s %18s %18s\n' "${label[$row]}" "$wm ($wp)" "$cm ($cp)" \
        "$(awk -v a="$wm" -v b="$base_wall" 'BEGIN { printf "%+.3f", a - b }')" \
        "$(awk -v a="$cm" -v b="$base_cpu" 'BEGIN { printf "%+.3f", a - b }')"
done
