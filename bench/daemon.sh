#!/usr/bin/env bash
# The daemon's idle cost with many services: wakeups (context switches of the
# daemon over an idle period) and resident memory. Each service is a busybox
# `sleep` with the default namespaces (pid, mount, uts, ipc, net) and its own cgroup.
#   bench/daemon.sh            # 100 services, 10 s idle
#   N=20 IDLE=30 bench/daemon.sh
# Needs root (namespaces, cgroups). Uses the release build of supervisor and init.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100}
IDLE=${IDLE:-10}
source bench/lib.sh
bench_setup bench
{
    service_file_head
    for i in $(seq 1 "$N"); do
        printf '  s%d:\n    image: bench\n    command: exec sleep 1000000\n' "$i"
    done
} >"$dir/services.yaml"

start=$(date +%s.%N)
SUPERVISOR_LOG=warn "$bin" daemon -c "$dir/services.yaml" 2>"$dir/daemon.log" &
pid=$!
running() { "$bin" --state-dir "$dir/state" status --json 2>/dev/null | grep -c '"state": "running"' || true; }
while [ "$(running)" -lt "$N" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/daemon.log" >&2; exit 1; }
    sleep 0.2
done
up=$(date +%s.%N)

switches() { awk '/^(voluntary|nonvoluntary)_ctxt_switches/ { n += $2 } END { print n }' "/proc/$pid/status"; }
sleep 1
before=$(switches)
sleep "$IDLE"
after=$(switches)
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")

printf 'services:              %d\n' "$N"
printf 'all running after:     %.2f s\n' "$(echo "$up - $start" | bc)"
printf 'idle wakeups:          %d in %d s\n' "$((after - before))" "$IDLE"
printf 'daemon RSS:            %d KiB (%.1f MiB)\n' "$rss" "$(echo "$rss / 1024" | bc -l)"
