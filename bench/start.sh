#!/usr/bin/env bash
# Start-to-exit latency of one container running /bin/true:
#   supervisor run   (pid, mount, uts, ipc, net namespaces; busybox rootfs; cgroup with limits)
#   crun run, runc run  (same namespaces, rootfs and limits, an OCI bundle)
#   unshare --fork --pid --mount --uts --ipc --net chroot ROOTFS /bin/true   (the baseline)
#   the baseline plus a fresh cgroup joined in every hierarchy (what the issue calls baseline-plus-join)
# each back to back and after 50 ms idle (cold), interleaved round-robin so that
# all share the same noise. Prints one table: median and p90 in ms, and ratios.
#
# Usage (as root):  bench/start.sh [RUNS]        (default 40 runs per row)
# Binaries: BIN_DIR (default target/x86_64-unknown-linux-musl/release; build them
# with `cargo build --release -p supervisor -p init`). BEFORE_BIN_DIR, if set, adds a
# row for the supervisor and init there (e.g. a copy of an earlier build), to compare
# a change side by side in one run. In the pure-v2 test VM, copy
# them to the guest's /tmp first: executed from the 9p share they are re-read on
# every exec, which then dominates the figures.
set -euo pipefail

runs=${1:-40}
here=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${BIN_DIR:-$here/target/x86_64-unknown-linux-musl/release}
supervisor=$bin_dir/supervisor
before=${BEFORE_BIN_DIR:+$BEFORE_BIN_DIR/supervisor}

die() { echo "start.sh: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "run as root (namespaces, cgroups)"
[[ -x $supervisor && -x $bin_dir/init ]] ||
    die "$bin_dir/{supervisor,init} missing: cargo build --release -p supervisor -p init"
[[ -z $before ]] || [[ -x $before && -x $BEFORE_BIN_DIR/init ]] ||
    die "$BEFORE_BIN_DIR/{supervisor,init} missing"
for tool in crun runc unshare jq /bin/busybox; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

work=$(mktemp -d /tmp/bench-start.XXXXXX)
tag=bench-start-$$
cgroup_roots=$(awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo)
cleanup() {
    for root in $cgroup_roots; do
        for parent in "$root/$tag" "$root/$tag-join" "$root/$tag-runc" "$root/$tag-crun"; do
            [[ -d $parent ]] || continue
            find "$parent" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
            rmdir "$parent" 2>/dev/null || true
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT

# --- the busybox root filesystem, shared by every row --------------------------
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"

memory=$((64 << 20))
pids=100

# --- supervisor --------------------------------------------------------------
cat >"$work/services.yaml" <<EOF
state_dir: $work/state
images_dir: $work/images
cgroup_parent: $tag
services:
  bench:
    image: $rootfs
    command: [/bin/true]
    readonly_rootfs: true
    limits:
      memory: 64M
      pids: $pids
EOF
"$supervisor" check -c "$work/services.yaml" >/dev/null

# --- OCI bundle for crun and runc ---------------------------------------------
bundle=$work/bundle
mkdir -p "$bundle"
(cd "$bundle" && runc spec)
make_bundle() { # cgroupsPath
    jq --arg root "$rootfs" --arg cg "$1" --argjson mem "$memory" --argjson pids "$pids" '
        .root = {path: $root, readonly: true}
        | .process.args = ["/bin/true"] | .process.terminal = false
        | .linux.namespaces = [{type: "pid"}, {type: "network"}, {type: "ipc"}, {type: "uts"}, {type: "mount"}]
        | .linux.cgroupsPath = $cg
        | .linux.resources = {memory: {limit: $mem}, pids: {limit: $pids}}' "$bundle/config.json"
}
mkdir -p "$work/runc-bundle" "$work/crun-bundle"
make_bundle "/$tag-runc/ctr" >"$work/runc-bundle/config.json"
make_bundle "/$tag-crun/ctr" >"$work/crun-bundle/config.json"

# --- baseline plus a cgroup join in every hierarchy ------------------------------
join_procs=()
for root in $cgroup_roots; do join_procs+=("$root/$tag-join/ctr/cgroup.procs"); done

# --- one timed run of each row (prints ms) ------------------------------------
# crun refuses this host's hybrid layout ("cgroups in hybrid mode not supported"):
# it runs in a private mount namespace where an empty file hides the unified
# hierarchy's controller list. The whole measurement runs there (see below).

row_supervisor() { "$supervisor" run -c "$work/services.yaml" bench >/dev/null; }
row_before() { "$before" run -c "$work/services.yaml" bench >/dev/null; }
row_runc() { runc --root "$work/runc-state" run -b "$work/runc-bundle" "$tag" >/dev/null; }
row_crun() { crun --root "$work/crun-state" run -b "$work/crun-bundle" "$tag" >/dev/null; }
row_unshare() { unshare --fork --pid --mount --uts --ipc --net chroot "$rootfs" /bin/true; }
join_dirs=("${join_procs[@]%/cgroup.procs}")
cpuset_cpus=$(cat /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null || true)
cpuset_mems=$(cat /sys/fs/cgroup/cpuset/cpuset.mems 2>/dev/null || true)
row_join() {
    mkdir -p "${join_dirs[@]}"
    if [[ -d /sys/fs/cgroup/cpuset/$tag-join ]]; then # an empty cpuset takes no task
        local d
        for d in "/sys/fs/cgroup/cpuset/$tag-join" "/sys/fs/cgroup/cpuset/$tag-join/ctr"; do
            echo "$cpuset_cpus" >"$d/cpuset.cpus"
            echo "$cpuset_mems" >"$d/cpuset.mems"
        done
    fi
    [[ -d /sys/fs/cgroup/memory ]] && echo $memory >"/sys/fs/cgroup/memory/$tag-join/ctr/memory.limit_in_bytes"
    bash -c 'for f; do echo $$ >"$f"; done; exec unshare --fork --pid --mount --uts --ipc --net chroot "'"$rootfs"'" /bin/true' _ "${join_procs[@]}"
    rmdir "${join_dirs[@]}"
}

rows=(unshare join supervisor crun runc)
[[ -z $before ]] || rows=(unshare join before supervisor crun runc)
declare -A label=(
    [unshare]="unshare+chroot (baseline)"
    [join]="baseline + cgroup join"
    [supervisor]="supervisor run"
    [before]="supervisor run (before)"
    [crun]="crun run"
    [runc]="runc run"
)

# Runs every row `runs` times, interleaved, sleeping $1 s before each run;
# appends "row ms" lines to $2.
measure() { # idle_seconds outfile
    local idle=$1 out=$2 i row t0 t1
    for ((i = 0; i < runs; i++)); do
        for row in "${rows[@]}"; do
            [[ $idle == 0 ]] || sleep "$idle"
            t0=${EPOCHREALTIME/./} # microseconds, without forking
            "row_$row"
            t1=${EPOCHREALTIME/./}
            echo "$row $(((t1 - t0) / 10))" >>"$out" # hundredths of ms
        done
    done
}

export -f measure row_supervisor row_before row_runc row_crun row_unshare row_join
export supervisor before work tag memory rootfs runs cpuset_cpus cpuset_mems
export rows_list="${rows[*]}"
: >"$work/warm.txt"
: >"$work/cold.txt"
touch "$work/empty"
# One private mount namespace for the whole measurement (crun needs it; the
# other rows are unaffected by a hidden cgroup.controllers).
unshare --mount --propagation private bash -c '
    set -euo pipefail
    [[ -e /sys/fs/cgroup/unified/cgroup.controllers ]] &&
        mount --bind "$work/empty" /sys/fs/cgroup/unified/cgroup.controllers
    join_procs=('"$(printf '%q ' "${join_procs[@]}")"')
    join_dirs=("${join_procs[@]%/cgroup.procs}")
    rows=($rows_list)
    for row in "${rows[@]}"; do "row_$row"; done   # warm up caches once
    measure 0 "$work/warm.txt"
    measure 0.05 "$work/cold.txt"
'

# --- the table -----------------------------------------------------------------
stat() { # file row -> "median p90" in ms
    awk -v r="$2" '$1 == r { print $2 }' "$1" | sort -n | awk '
        { v[NR] = $1 }
        END { m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.5)]; printf "%.2f %.2f", m / 100, p / 100 }'
}
read -r base_warm _ <<<"$(stat "$work/warm.txt" unshare)"
read -r base_cold _ <<<"$(stat "$work/cold.txt" unshare)"
read -r crun_warm _ <<<"$(stat "$work/warm.txt" crun)"
read -r crun_cold _ <<<"$(stat "$work/cold.txt" crun)"

echo "start-to-exit of /bin/true, $runs runs per row, $(uname -r), $(nproc) CPUs"
printf '%-28s %16s %16s %14s %14s\n' "" "back-to-back ms" "after 50ms idle" "x baseline" "x crun"
printf '%-28s %16s %16s %14s %14s\n' "" "median (p90)" "median (p90)" "warm / cold" "warm / cold"
for row in "${rows[@]}"; do
    read -r wm wp <<<"$(stat "$work/warm.txt" "$row")"
    read -r cm cp <<<"$(stat "$work/cold.txt" "$row")"
    printf '%-28s %16s %16s %14s %14s\n' "${label[$row]}" "$wm ($wp)" "$cm ($cp)" \
        "$(awk -v a="$wm" -v b="$base_warm" -v c="$cm" -v d="$base_cold" 'BEGIN { printf "%.2f / %.2f", a / b, c / d }')" \
        "$(awk -v a="$wm" -v b="$crun_warm" -v c="$cm" -v d="$crun_cold" 'BEGIN { printf "%.2f / %.2f", a / b, c / d }')"
done
