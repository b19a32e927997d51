#!/usr/bin/env bash
# Soak: CYCLES cycles over N services (busybox `sleep`, restart: always), each
# cycle one service through stop, start, restart, freeze, thaw and a crash
# (its main process killed with SIGKILL) with its automatic restart. Before and
# after, with every service running: the daemon's open fds, RSS, threads, the
# services' cgroup directories, the daemon's mounts, writable layers and log
# files. Each must come back to its baseline; RSS may grow by less than 1 MiB.
#   bench/soak.sh                  # 1000 cycles over 20 services
#   CYCLES=100 N=5 bench/soak.sh
# Needs root. Uses the release build of supervisor and init. Exit 1 if a figure
# did not come back.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20}
CYCLES=${CYCLES:-1000}
source bench/lib.sh
bench_setup soak
{
    service_file_head
    for i in $(seq 1 "$N"); do
        printf '  s%d:\n    image: bench\n    command: exec sleep 1000000\n' "$i"
        printf '    restart: always\n    restart_delay: 10ms\n    restart_delay_max: 10ms\n'
        printf '    limits: {memory: 32M, pids: 20}\n'
    done
} >"$dir/services.yaml"

SUPERVISOR_LOG=warn "$bin" daemon -c "$dir/services.yaml" 2>"$dir/daemon.log" &
pid=$!
sv() { "$bin" --state-dir "$dir/state" "$@"; }
state_of() { sv status "$1" --json | sed -n 's/.*"state": "\([a-z]*\)".*/\1/p'; }
pid_of() { sv status "$1" --json | sed -n 's/.*"pid": \([0-9]*\).*/\1/p'; }
running() { sv status --json 2>/dev/null | grep -c '"state": "running"' || true; }
all_running() {
    local deadline=$((SECONDS + 60))
    while [ "$(running)" -lt "$N" ]; do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/daemon.log" >&2; exit 1; }
        [ $SECONDS -lt $deadline ] || { echo "soak: not all running" >&2; sv status >&2; exit 1; }
        sleep 0.05
    done
}

cgroup_roots=$(awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo)
measure() {
    local cgroups=0 root
    for root in $cgroup_roots; do
        [ -d "$root/$parent" ] && cgroups=$((cgroups + $(find "$root/$parent" -mindepth 1 -type d | wc -l)))
    done
    echo "fds $(ls /proc/$pid/fd | wc -l)"
    echo "rss_kib $(awk '/^VmRSS/ { print $2 }' /proc/$pid/status)"
    echo "threads $(awk '/^Threads/ { print $2 }' /proc/$pid/status)"
    echo "cgroup_dirs $cgroups"
    echo "mounts $(wc -l </proc/$pid/mountinfo)"
    echo "writable_layers $(ls "$dir/state/containers" 2>/dev/null | wc -l)"
    echo "log_files $(ls "$dir/state/logs" | wc -l)"
}

all_running
# Let the first start's allocations settle before the baseline.
for i in $(seq 1 "$N"); do sv freeze "s$i"; sv thaw "s$i"; done
sleep 1
measure >"$dir/before"

start=$(date +%s.%N)
for c in $(seq 0 $((CYCLES - 1))); do
    s=s$((c % N + 1))
    sv stop "$s"
    sv start "$s"
    sv restart "$s"
    sv freeze "$s"
    sv thaw "$s"
    old=$(pid_of "$s")
    # Its init may not have started the command yet.
    deadline=$((SECONDS + 30))
    until main=$(awk '{ print $1 }' "/proc/$old/task/$old/children") && [ -n "$main" ]; do
        [ $SECONDS -lt $deadline ] || { echo "soak: $s has no command" >&2; exit 1; }
        sleep 0.01
    done
    kill -KILL "$main"
    until [ "$(state_of "$s")" = running ] && [ "$(pid_of "$s")" != "$old" ]; do
        [ $SECONDS -lt $deadline ] || { echo "soak: $s did not restart" >&2; exit 1; }
        sleep 0.01
    done
done
end=$(date +%s.%N)
all_running
sleep 1
measure >"$dir/after"

printf 'soak: %d cycles over %d services in %.0f s\n\n' "$CYCLES" "$N" "$(echo "$end - $start" | bc)"
printf '| figure | before | after |\n|---|---:|---:|\n'
failed=0
while read -r name before; do
    after=$(awk -v n="$name" '$1 == n { print $2 }' "$dir/after")
    printf '| %s | %s | %s |\n' "$name" "$before" "$after"
    if [ "$name" = rss_kib ]; then
        [ $((after - before)) -lt 1024 ] || failed=1
    elif [ "$after" != "$before" ]; then
        failed=1
    fi
done <"$dir/before"
grep -i panic "$dir/daemon.log" && failed=1
[ $failed = 0 ] && echo "every figure back to its baseline" || { echo "soak: a figure did not come back" >&2; exit 1; }
