#!/usr/bin/env bash
# Services outliving the daemon, with N services (TICKERS of them print a
# sequence number every 100 ms, the others sleep): the time from
# `supervisor daemon` start (after a kill -9 of the previous one) to all N
# adopted services reported running, beside the time a fresh start takes;
# the time `supervisor reexec` takes (ROUNDS times); and the tickers' log
# lines lost or duplicated over both (from their sequence numbers).
#   bench/adopt.sh                 # 100 services, 10 tickers, 5 reexecs
#   N=20 TICKERS=5 ROUNDS=10 bench/adopt.sh
# Needs root (namespaces, cgroups). Uses the release build of supervisor and init.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100}
TICKERS=${TICKERS:-10}
ROUNDS=${ROUNDS:-5}
source bench/lib.sh
bench_setup bench
{
    service_file_head
    for i in $(seq 1 "$N"); do
        if [ "$i" -le "$TICKERS" ]; then
            printf '  s%d:\n    image: bench\n    command: "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"\n' "$i"
        else
            printf '  s%d:\n    image: bench\n    command: exec sleep 1000000\n' "$i"
        fi
    done
} >"$dir/services.yaml"

now() { date +%s.%N; }
daemon() {
    SUPERVISOR_LOG=warn "$bin" daemon -c "$dir/services.yaml" 2>>"$dir/daemon.log" &
    pid=$!
}
running() { "$bin" --state-dir "$dir/state" status --json 2>/dev/null | grep -c '"state": "running"' || true; }
wait_running() {
    while [ "$(running)" -lt "$N" ]; do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/daemon.log" >&2; exit 1; }
        sleep 0.01
    done
}
pids() { "$bin" --state-dir "$dir/state" status --json | grep '"pid"' | tr -d ' ,' | sort; }

start=$(now)
daemon
wait_running
fresh=$(echo "$(now) - $start" | bc)
before=$(pids)

sleep 1
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
sleep 1
start=$(now)
daemon
wait_running
adopted=$(echo "$(now) - $start" | bc)
[ "$(pids)" = "$before" ] || { echo "bench/adopt.sh: the pids changed on adoption" >&2; exit 1; }

times=()
for _ in $(seq 1 "$ROUNDS"); do
    sleep 0.5
    start=$(now)
    "$bin" --state-dir "$dir/state" reexec
    times+=("$(echo "($(now) - $start) * 1000" | bc)")
done
[ "$(pids)" = "$before" ] || { echo "bench/adopt.sh: the pids changed on reexec" >&2; exit 1; }
sleep 1
"$bin" --state-dir "$dir/state" shutdown
wait "$pid" || true
pid=

# Each ticker's log: 1, 2, 3... without gap or duplicate.
lost=0
duplicated=0
for i in $(seq 1 "$TICKERS"); do
    read -r l d < <(sed -n 's/.*tick \([0-9]*\)$/\1/p' "$dir/state/logs/s$i.log" |
        awk 'NR == 1 { prev = $1; next }
             $1 > prev + 1 { lost += $1 - prev - 1 }
             $1 <= prev { dup++ }
             { prev = $1 }
             END { print lost + 0, dup + 0 }')
    lost=$((lost + l))
    duplicated=$((duplicated + d))
done

sorted=$(printf '%s\n' "${times[@]}" | sort -n)
printf 'services:                      %d (%d tickers)\n' "$N" "$TICKERS"
printf 'fresh start, all running:      %.3f s\n' "$fresh"
printf 'kill -9, restart, all adopted: %.3f s (%.1fx faster than a fresh start)\n' "$adopted" "$(echo "$fresh / $adopted" | bc -l)"
printf 'reexec (%d rounds):             median %.1f ms, max %.1f ms\n' "$ROUNDS" \
    "$(echo "$sorted" | sed -n "$(((ROUNDS + 1) / 2))p")" "$(echo "$sorted" | tail -n 1)"
printf 'log lines lost / duplicated:   %d / %d\n' "$lost" "$duplicated"
