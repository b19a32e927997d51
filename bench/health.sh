#!/usr/bin/env bash
# The daemon's cost of health checks: N busybox `sleep` services (default
# namespaces, a cgroup each), each with a health check (`test: [CMD, "true"]`)
# every INTERVAL. Once every service is healthy, the daemon's own CPU time
# (utime + stime of /proc/PID/stat) over DURATION seconds, as % of one core;
# beside it the same daemon and services without health checks, and the CPU
# of the checks themselves (the exec-setup processes the daemon reaps:
# cutime + cstime), per check.
#   bench/health.sh                      # 100 services, every 1s, over 30 s
#   N=20 INTERVAL=200ms DURATION=10 bench/health.sh
# Needs root (namespaces, cgroups). Uses the release build of supervisor and init.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100}
INTERVAL=${INTERVAL:-1s}
DURATION=${DURATION:-30}
source bench/lib.sh
bench_setup bench
hz=$(getconf CLK_TCK)

# utime stime cutime cutime of $pid, in clock ticks (fields 14 to 17; the
# command, field 2, has no spaces here).
ticks() { awk '{ print $14, $15, $16, $17 }' "/proc/$pid/stat"; }

# One daemon: $1 = "check" or "none". Prints the daemon's CPU %; with checks,
# how many ran and their own CPU per check.
measure() {
    local with=$1
    local state=$dir/state-$with
    {
        echo "state_dir: $state"
        echo "images_dir: $dir/images"
        echo "cgroup_parent: supervisor-bench-health-$$-$with"
        echo "services:"
        for i in $(seq 1 "$N"); do
            printf '  s%d:\n    image: bench\n    command: exec sleep 1000000\n' "$i"
            if [ "$with" = check ]; then
                printf '    healthcheck: {test: [CMD, "true"], interval: %s}\n' "$INTERVAL"
            fi
        done
    } >"$dir/services-$with.yaml"
    SUPERVISOR_LOG=warn "$bin" daemon -c "$dir/services-$with.yaml" 2>"$dir/daemon-$with.log" &
    pid=$!
    local want='"state": "running"'
    [ "$with" = check ] && want='"health": "healthy"'
    local deadline=$((SECONDS + 300))
    until [ "$("$bin" --state-dir "$state" status --json 2>/dev/null | grep -c "$want" || true)" -ge "$N" ]; do
        kill -0 "$pid" 2>/dev/null || { cat "$dir/daemon-$with.log" >&2; exit 1; }
        [ "$SECONDS" -lt "$deadline" ] || { echo "services not up after 300 s" >&2; exit 1; }
        sleep 0.5
    done
    sleep 1
    local before after
    before=($(ticks))
    sleep "$DURATION"
    after=($(ticks))
    local own=$(( (after[0] + after[1]) - (before[0] + before[1]) ))
    local children=$(( (after[2] + after[3]) - (before[2] + before[3]) ))
    # Checks that ran in the window: one per service per interval (the
    # interval runs from the end of one check to the start of the next).
    local interval_s
    interval_s=$(awk -v i="$INTERVAL" 'BEGIN { if (i ~ /ms$/) print i / 1000; else print i + 0 }')
    local checks
    checks=$(awk -v n="$N" -v d="$DURATION" -v i="$interval_s" 'BEGIN { printf "%d", n * d / i }')
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
    awk -v t="$own" -v hz="$hz" -v d="$DURATION" -v c="$children" -v k="$checks" -v w="$with" 'BEGIN {
        printf "%-22s daemon CPU %5.2f%% of one core", w, 100 * t / hz / d
        if (w == "check") printf "   checks ~%d, their own CPU %.2f ms per check", k, 1000 * c / hz / k
        printf "\n"
    }'
}

printf 'services: %d, health check every %s, measured over %d s (load average %s)\n' \
    "$N" "$INTERVAL" "$DURATION" "$(cut -d' ' -f1 /proc/loadavg)"
measure none
measure check
