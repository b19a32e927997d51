#!/usr/bin/env bash
# What a user namespace adds to starting a service: start-to-exit of
# `supervisor run` of /bin/true on a busybox image, with the default
# namespaces and with `user` added (a private id range, the image idmapped),
# over a writable layer (overlay) and with readonly_rootfs. Rows interleaved
# round-robin so that all share the same noise. Prints medians and p90 in ms
# of wall time and of CPU time, and what `user` adds to each.
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
for tool in /bin/busybox python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

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
# Wall time, and the CPU time (user + system) of the supervisor and of the
# container's processes it reaped (wait4's rusage, in microseconds), which a
# busy machine disturbs less.
python3 - "$supervisor" "$work" "$runs" "${rows[@]}" <<'PY'
import os, sys, time
supervisor, work, runs, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
config = os.path.join(work, "services.yaml")
with open(os.path.join(work, "wall.txt"), "w") as wall, open(os.path.join(work, "cpu.txt"), "w") as cpu:
    for _ in range(runs):
        for row in rows:
            t0 = time.perf_counter_ns()
            pid = os.posix_spawn(supervisor, [supervisor, "run", "-c", config, row], os.environ)
            _, status, usage = os.wait4(pid, 0)
            t1 = time.perf_counter_ns()
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"userns.sh: {row} failed")
            wall.write(f"{row} {(t1 - t0) // 1000}\n")
            cpu.write(f"{row} {round((usage.ru_utime + usage.ru_stime) * 1e6)}\n")
PY

stat() { # file row -> "median p90" in ms
    awk -v r="$2" '$1 == r { print $2 }' "$1" | sort -n | awk '
        { v[NR] = $1 }
        END { m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.5)]; printf "%.2f %.2f", m / 1000, p / 1000 }'
}
added() { # file row -> what the -user row adds to its base row, in ms
    [[ $2 == *-user ]] || return 0
    read -r a _ <<<"$(stat "$1" "$2")"
    read -r b _ <<<"$(stat "$1" "${2%-user}")"
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%+.2f", a - b }'
}
echo "supervisor run of /bin/true, $runs runs per row, $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
printf '%-16s %18s %10s %18s %10s\n' "" "wall ms" "user adds" "CPU ms" "user adds"
printf '%-16s %18s %10s %18s %10s\n' "" "median (p90)" "" "median (p90)" ""
for row in "${rows[@]}"; do
    read -r wm wp <<<"$(stat "$work/wall.txt" "$row")"
    read -r cm cp <<<"$(stat "$work/cpu.txt" "$row")"
    printf '%-16s %18s %10s %18s %10s\n' "$row" "$wm ($wp)" "$(added "$work/wall.txt" "$row")" \
        "$cm ($cp)" "$(added "$work/cpu.txt" "$row")"
done
