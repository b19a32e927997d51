#!/usr/bin/env bash
# Freeze and thaw latency (command issued -> kernel reports frozen/thawed) of a group of
# 1, 100 and 1,000 processes:
#   - the cgroups library (Cgroup::freeze/thaw, in-process), with each driver this
#     host's layout offers (hybrid: auto = unified freezer, v1 = v1 freezer);
#   - raw cgroup file writes on the same group (write, re-read until reported);
#   - `runc pause` / `runc resume` on the same workload (busybox sleeps), timed as
#     commands, as a user would run them;
#   - `supervisor freeze` / `supervisor thaw` (CLI -> daemon -> library), the same workload
#     as a service (its group also holds the service's init: n+1 processes), per driver.
# One run, as root. Prints a markdown table with ratios to the library (auto and v1 drivers).
#
#   bench/freeze.sh [ROUNDS]        (default 20 rounds per row; medians reported)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-20}
sizes=(1 100 1000)
target=${CARGO_TARGET_DIR:-target}

if [ "$(id -u)" != 0 ]; then
    echo "bench/freeze.sh: needs root (cgroups, runc)" >&2
    exit 1
fi
for tool in runc jq busybox; do
    command -v "$tool" >/dev/null || { echo "bench/freeze.sh: $tool is not installed" >&2; exit 1; }
done

cargo build --release -p appliance-cgroups --example freeze_bench >&2
cargo build --release -p supervisor -p init >&2
bench=$target/x86_64-unknown-linux-musl/release/examples/freeze_bench
supervisor=$target/x86_64-unknown-linux-musl/release/supervisor

work=$(mktemp -d /tmp/freeze-bench.XXXXXX)
runc_root=$work/runc-state
containers=()
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ]; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    for id in "${containers[@]}"; do
        runc --root "$runc_root" kill "$id" KILL 2>/dev/null || true
        runc --root "$runc_root" delete -f "$id" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

results=$work/results.tsv # label procs op median_us min_us max_us

# Which drivers this layout offers (the library logs the same detection).
has_v2=$(awk '$0 ~ / - cgroup2 / {print 1; exit}' /proc/self/mountinfo)
has_v1=$(awk '$0 ~ / - cgroup .*(freezer|memory)/ {print 1; exit}' /proc/self/mountinfo)
drivers=()
[ -n "$has_v2" ] && drivers+=(auto)
[ -n "$has_v1" ] && drivers+=(v1)

for driver in "${drivers[@]}"; do
    for n in "${sizes[@]}"; do
        echo "== library and raw writes, driver $driver, $n processes" >&2
        "$bench" "$driver" "$n" "$rounds" | sed "s/^/$driver-/" >>"$results"
    done
done

# median min max (µs) of numbers on stdin
stats() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)] "\t" a[1] "\t" a[NR]}'; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

# runc: a read-only busybox bundle; the same shell starts n-1 sleeps and becomes the n-th.
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin" "$bundle"/rootfs/{proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
ln -s busybox "$bundle/rootfs/bin/sh"
ln -s busybox "$bundle/rootfs/bin/sleep"
(cd "$bundle" && runc spec)
for n in "${sizes[@]}"; do
    echo "== runc pause/resume, $n processes" >&2
    id=freeze-bench-$$-$n
    script="i=1; while [ \$i -lt $n ]; do sleep 100000 & i=\$((i+1)); done; exec sleep 100000"
    # runc needs an absolute cgroupsPath on this host.
    jq --arg s "$script" --arg cg "/$id" \
        '.process.terminal = false | .process.args = ["/bin/sh", "-c", $s] | .linux.cgroupsPath = $cg' \
        "$bundle/config.json" >"$work/config.json"
    mv "$work/config.json" "$bundle/config.json"
    containers+=("$id")
    (cd "$bundle" && runc --root "$runc_root" run -d "$id" </dev/null >/dev/null)
    for _ in $(seq 600); do
        count=$(($(runc --root "$runc_root" ps "$id" | wc -l) - 1))
        [ "$count" -ge "$n" ] && break
        sleep 0.1
    done
    [ "$count" -ge "$n" ] || { echo "bench/freeze.sh: runc container has $count of $n processes" >&2; exit 1; }
    : >"$work/pause"
    : >"$work/resume"
    for _ in $(seq "$rounds"); do
        sleep 0.02
        t0=$(now_us); runc --root "$runc_root" pause "$id"; t1=$(now_us)
        echo $((t1 - t0)) >>"$work/pause"
        sleep 0.02
        t0=$(now_us); runc --root "$runc_root" resume "$id"; t1=$(now_us)
        echo $((t1 - t0)) >>"$work/resume"
    done
    printf 'runc\t%s\tfreeze\t%s\n' "$n" "$(stats <"$work/pause")" >>"$results"
    printf 'runc\t%s\tthaw\t%s\n' "$n" "$(stats <"$work/resume")" >>"$results"
    runc --root "$runc_root" kill "$id" KILL
    for _ in $(seq 100); do
        [ "$(runc --root "$runc_root" state "$id" | jq -r .status)" = stopped ] && break
        sleep 0.05
    done
    runc --root "$runc_root" delete -f "$id"
    unset 'containers[-1]'
done

# supervisor: one daemon per driver, one service per size, frozen and thawed through the CLI.
workload() { echo "i=1; while [ \$i -lt $1 ]; do sleep 100000 & i=\$((i+1)); done; exec sleep 100000"; }
for driver in "${drivers[@]}"; do
    echo "== supervisor freeze/thaw, driver $driver" >&2
    state=$work/state-$driver
    {
        echo "state_dir: $state"
        echo "images_dir: $work/images"
        echo "cgroup_parent: freeze-bench-$$-$driver"
        echo "cgroup_driver: $driver"
        echo "services:"
        for n in "${sizes[@]}"; do
            echo "  p$n:"
            echo "    image: $bundle/rootfs"
            echo "    readonly_rootfs: true"
            echo "    command: [/bin/sh, -c, \"$(workload "$n")\"]"
        done
    } >"$work/services-$driver.yaml"
    "$supervisor" check -c "$work/services-$driver.yaml" >/dev/null
    "$supervisor" daemon -c "$work/services-$driver.yaml" 2>"$work/daemon-$driver.log" &
    daemon_pid=$!
    cli() { "$supervisor" --state-dir "$state" "$@"; }
    for n in "${sizes[@]}"; do
        for _ in $(seq 600); do
            count=$(cli status --json 2>/dev/null | jq --arg s "p$n" '.[] | select(.name == $s) | .pids_current // 0' || echo 0)
            [ "${count:-0}" -gt "$n" ] && break
            sleep 0.1
        done
        if [ "${count:-0}" -le "$n" ]; then
            echo "bench/freeze.sh: service p$n has ${count:-0} processes; daemon log:" >&2
            tail -n 20 "$work/daemon-$driver.log" >&2
            exit 1
        fi
        : >"$work/freeze"
        : >"$work/thaw"
        for _ in $(seq "$rounds"); do
            sleep 0.02
            t0=$(now_us); cli freeze "p$n" >/dev/null; t1=$(now_us)
            echo $((t1 - t0)) >>"$work/freeze"
            sleep 0.02
            t0=$(now_us); cli thaw "p$n" >/dev/null; t1=$(now_us)
            echo $((t1 - t0)) >>"$work/thaw"
        done
        printf 'supervisor-%s\t%s\tfreeze\t%s\n' "$driver" "$n" "$(stats <"$work/freeze")" >>"$results"
        printf 'supervisor-%s\t%s\tthaw\t%s\n' "$driver" "$n" "$(stats <"$work/thaw")" >>"$results"
    done
    cli shutdown >/dev/null
    wait "$daemon_pid"
    daemon_pid=
done

# The table: medians in µs (min-max); each ratio = median / the library's median for the
# same size and operation, with the auto driver and with the v1 driver (where offered).
echo
echo "Freeze/thaw latency, $rounds rounds each, kernel $(uname -r), drivers: ${drivers[*]}"
echo
echo "| processes | method | freeze µs median (min-max) | ÷ lib auto | ÷ lib v1 | thaw µs median (min-max) | ÷ lib auto | ÷ lib v1 |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '
    { key = $1 SUBSEP $2 SUBSEP $3; med[key] = $4; range[key] = $5 "-" $6
      if (!(($1) in seen)) { seen[$1] = 1; order[++n] = $1 } }
    function ratio(value, base, p, op) {
        k = base SUBSEP p SUBSEP op
        return (k in med) ? sprintf("%.2f", value / med[k]) : "-"
    }
    END {
        split("1 100 1000", sz, " ")
        names["auto-lib"] = "library, auto driver"
        names["auto-raw"] = "raw writes, auto driver"
        names["v1-lib"] = "library, v1 driver (v1 freezer)"
        names["v1-raw"] = "raw writes, v1 freezer"
        names["runc"] = "runc pause / resume"
        names["supervisor-auto"] = "supervisor freeze / thaw, auto driver"
        names["supervisor-v1"] = "supervisor freeze / thaw, v1 driver"
        for (s = 1; s <= 3; s++) for (m = 1; m <= n; m++) {
            meth = order[m]; p = sz[s]
            f = meth SUBSEP p SUBSEP "freeze"; t = meth SUBSEP p SUBSEP "thaw"
            if (!(f in med)) continue
            label = (meth in names) ? names[meth] : meth
            printf "| %s | %s | %d (%s) | %s | %s | %d (%s) | %s | %s |\n", p, label,
                med[f], range[f], ratio(med[f], "auto-lib", p, "freeze"), ratio(med[f], "v1-lib", p, "freeze"),
                med[t], range[t], ratio(med[t], "auto-lib", p, "thaw"), ratio(med[t], "v1-lib", p, "thaw")
        }
    }' "$results"
