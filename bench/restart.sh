#!/usr/bin/env bash
# Restart latency: a service that exits at once (restart: always, restart_delay 1ms),
# from the "exited" log line to the next "started" line, over DURATION seconds.
# Run as root:  bench/restart.sh [BINDIR] [DURATION] [DELAY]
# BINDIR defaults to the release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/x86_64-unknown-linux-musl/release}/supervisor
duration=${2:-5}
delay=${3:-1ms}
dir=$(mktemp -d /tmp/restart-bench.XXXXXX)
parent=restart-bench-$$
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
"$bin" image build-busybox bench --images-dir "$dir/images" >/dev/null
cat >"$dir/services.yaml" <<YAML
state_dir: $dir/state
images_dir: $dir/images
cgroup_parent: $parent
services:
  crash:
    image: bench
    command: exit 1
    restart: always
    restart_delay: $delay
    restart_delay_max: $delay
    limits: {memory: 64M, pids: 50}
YAML
SUPERVISOR_LOG=warn "$bin" daemon -c "$dir/services.yaml" 2>"$dir/daemon.log" &
pid=$!
sleep "$duration"
kill -TERM "$pid"; wait "$pid" || true; pid=
python3 - "$dir/state/logs/crash.log" <<'PY'
import sys, datetime, statistics
def t(line):
    return datetime.datetime.strptime(line.split(' ')[0], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
exited = None; gaps = []; starts = 0
for line in open(sys.argv[1]):
    if '[supervisor] exited with status' in line: exited = t(line)
    elif '[supervisor] started, pid' in line:
        starts += 1
        if exited is not None: gaps.append((t(line) - exited) * 1000); exited = None
gaps.sort()
print(f"restarts {len(gaps)}  exit->started ms: mean {statistics.mean(gaps):.2f} median {statistics.median(gaps):.1f} p10 {gaps[len(gaps)//10]:.1f} p90 {gaps[len(gaps)*9//10]:.1f}")
PY
