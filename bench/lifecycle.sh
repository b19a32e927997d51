#!/usr/bin/env bash
# The daemon's responsiveness: `status --json` round trips (p50 / p99 / max in
# ms, 200 requests, over the control socket) with nothing else going on, while
# one service's container setup is stuck (its cgroup frozen ahead of it, so
# that the setup stops in the kernel as it joins), and while another client
# freezes and thaws a service of 1,000 processes back to back. Then 1,000
# services: time until all run, daemon RSS, idle wakeups in 10 s, status
# latency.
#   bench/lifecycle.sh                 # this tree's release build
#   OLD=/path/to/supervisor bench/lifecycle.sh   # also that binary, side by side
# Needs root and python3. OLD's init must be next to it.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release
cargo build --release -q -p supervisor -p init
MANY=${MANY:-1000}
here=$(pwd)

dir=$(mktemp -d /tmp/supervisor-lifecycle.XXXXXX)
pid=
cgroup_roots=$(awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo)
stop_daemon() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    pid=
}
cleanup() {
    stop_daemon
    for root in $cgroup_roots; do
        for p in "$root"/supervisor-lifecycle-$$-*; do
            [ -d "$p" ] || continue
            [ -f "$p/stuck/cgroup.freeze" ] && echo 0 >"$p/stuck/cgroup.freeze"
            [ -f "$p/stuck/freezer.state" ] && echo THAWED >"$p/stuck/freezer.state"
            find "$p" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
            rmdir "$p" 2>/dev/null || true
        done
    done
    rm -rf "$dir"
}
trap cleanup EXIT

"$target/supervisor" image build-busybox bench --images-dir "$dir/images" >/dev/null

# The group `parent/stuck`, created and frozen ahead of the daemon.
freeze_ahead() {
    local parent=$1 unified
    unified=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
    if [ -n "$unified" ]; then
        mkdir -p "$unified/$parent/stuck"
        echo 1 >"$unified/$parent/stuck/cgroup.freeze"
        echo "$unified/$parent/stuck/cgroup.freeze 0"
    else
        local freezer
        freezer=$(awk '$9 == "cgroup" && $NF ~ /freezer/ { print $5; exit }' /proc/self/mountinfo)
        mkdir -p "$freezer/$parent/stuck"
        echo FROZEN >"$freezer/$parent/stuck/freezer.state"
        echo "$freezer/$parent/stuck/freezer.state THAWED"
    fi
}

start_daemon() {
    local bin=$1 config=$2
    SUPERVISOR_LOG=warn "$bin" daemon -c "$config" 2>>"$dir/daemon.log" &
    pid=$!
}
sv() { "$bin" --state-dir "$dir/state" "$@"; }
wait_running() {
    local want=$1 deadline=$((SECONDS + 600))
    while [ "$(sv status --json 2>/dev/null | grep -c '"state": "running"' || true)" -lt "$want" ]; do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/daemon.log" >&2; exit 1; }
        [ $SECONDS -lt $deadline ] || { echo "lifecycle.sh: not all running" >&2; exit 1; }
        sleep 0.1
    done
}
latency() { python3 "$here/bench/status-latency.py" "$dir/state/control.sock" "$@"; }

responsiveness() {
    local label=$1 parent=supervisor-lifecycle-$$-$2
    {
        echo "state_dir: $dir/state"
        echo "images_dir: $dir/images"
        echo "cgroup_parent: $parent"
        echo "services:"
        for i in $(seq 1 20); do
            printf '  s%d:\n    image: bench\n    command: exec sleep 1000000\n' "$i"
        done
        printf '  stuck:\n    image: bench\n    command: exec sleep 1000000\n    autostart: false\n'
        printf '  big:\n    image: bench\n    autostart: false\n'
        printf '    command: i=0; while [ $i -lt 1000 ]; do sleep 1000000 & i=$((i+1)); done; wait\n'
    } >"$dir/services.yaml"
    read -r thaw_file thaw_value < <(freeze_ahead "$parent")
    start_daemon "$bin" "$dir/services.yaml"
    wait_running 20
    read -r idle50 idle99 idlemax _ < <(latency 200)
    sv start stuck >/dev/null 2>&1 &
    local starter=$!
    sleep 0.5
    read -r stuck50 stuck99 stuckmax _ < <(latency 200)
    echo "$thaw_value" 2>/dev/null >"$thaw_file" || true
    wait "$starter" || true
    sv start big
    local deadline=$((SECONDS + 120))
    until [ "$(sv status big --json | sed -n 's/.*"pids_current": \([0-9]*\).*/\1/p')" -ge 1001 ]; do
        [ $SECONDS -lt $deadline ] || { echo "lifecycle.sh: big never had 1000 processes" >&2; exit 1; }
        sleep 0.2
    done
    read -r fr50 fr99 frmax rounds < <(latency 200 --meanwhile freeze-thaw big)
    sv thaw big 2>/dev/null || true
    stop_daemon
    printf '| %s | %s / %s / %s | %s / %s / %s | %s / %s / %s (%s freezes and thaws) |\n' "$label" \
        "$idle50" "$idle99" "$idlemax" "$stuck50" "$stuck99" "$stuckmax" "$fr50" "$fr99" "$frmax" "$rounds"
}

many() {
    local label=$1 parent=supervisor-lifecycle-$$-$2
    {
        echo "state_dir: $dir/state"
        echo "images_dir: $dir/images"
        echo "cgroup_parent: $parent"
        echo "services:"
        for i in $(seq 1 "$MANY"); do
            printf '  s%d:\n    image: bench\n    command: exec sleep 1000000\n' "$i"
        done
    } >"$dir/services.yaml"
    local start up
    start=$(date +%s.%N)
    start_daemon "$bin" "$dir/services.yaml"
    wait_running "$MANY"
    up=$(date +%s.%N)
    switches() { awk '/^(voluntary|nonvoluntary)_ctxt_switches/ { n += $2 } END { print n }' "/proc/$pid/status"; }
    sleep 1
    local before after rss
    before=$(switches)
    sleep 10
    after=$(switches)
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
    read -r st50 st99 stmax _ < <(latency 50)
    stop_daemon
    printf '| %s | %.1f | %.1f | %d | %s / %s / %s |\n' "$label" "$(echo "$up - $start" | bc)" \
        "$(echo "$rss / 1024" | bc -l)" "$((after - before))" "$st50" "$st99" "$stmax"
}

bins=("$target/supervisor")
[ -n "${OLD:-}" ] && bins+=("$OLD")
echo "status --json round trips, ms (p50 / p99 / max of 200):"
echo
echo '| daemon | idle, 20 services | one setup stuck | freezing 1,000 processes |'
echo '|---|---|---|---|'
n=0
for bin in "${bins[@]}"; do
    n=$((n + 1))
    responsiveness "$bin" "r$n"
done
echo
echo "$MANY services (busybox sleep):"
echo
echo '| daemon | all running, s | RSS, MiB | idle wakeups in 10 s | status --json, ms (p50 / p99 / max of 50) |'
echo '|---|---:|---:|---:|---|'
n=0
for bin in "${bins[@]}"; do
    n=$((n + 1))
    many "$bin" "m$n"
done
