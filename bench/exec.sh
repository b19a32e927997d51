#!/usr/bin/env bash
# `supervisor exec NAME -- true` round trip against `nsenter -a -t PID true`
# (util-linux) into the same running service, RUNS times each, interleaved;
# medians side by side (goal: exec under 2x nsenter). exec does more: it asks
# the daemon for the service's state, joins the service's cgroups, and sets
# its user, capabilities, no_new_privs and seccomp filter.
# Run as root:  bench/exec.sh [BINDIR] [RUNS]
# BINDIR defaults to the release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/x86_64-unknown-linux-musl/release}/supervisor
runs=${2:-200}
dir=$(mktemp -d /tmp/exec-bench.XXXXXX)
parent=exec-bench-$$
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
  target:
    image: bench
    command: [sleep, "100000"]
YAML
SUPERVISOR_LOG=warn "$bin" daemon -c "$dir/services.yaml" 2>"$dir/daemon.log" &
pid=$!
for _ in $(seq 100); do
    init=$("$bin" status target --json --state-dir "$dir/state" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["pid"] or "")' 2>/dev/null || true)
    [ -n "$init" ] && break
    sleep 0.1
done
[ -n "$init" ] || { echo "bench/exec.sh: the service did not start" >&2; cat "$dir/daemon.log" >&2; exit 1; }
python3 - "$bin" "$dir/state" "$init" "$runs" <<'PY'
import subprocess, sys, time, statistics
bin, state, init, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
commands = {
    "supervisor exec -- true": [bin, "exec", "--state-dir", state, "target", "--", "true"],
    "nsenter -a -t PID true": ["nsenter", "-a", "-t", init, "true"],
}
times = {name: [] for name in commands}
for _ in range(runs):
    for name, argv in commands.items():
        start = time.perf_counter()
        subprocess.run(argv, check=True)
        times[name].append((time.perf_counter() - start) * 1000)
print(f"{'command':<26} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8}")
for name, t in times.items():
    t.sort()
    print(f"{name:<26} {statistics.median(t):>10.2f} {t[len(t)//10]:>8.2f} {t[len(t)*9//10]:>8.2f}")
ratio = statistics.median(times["supervisor exec -- true"]) / statistics.median(times["nsenter -a -t PID true"])
print(f"exec / nsenter: {ratio:.2f}x over {runs} runs each")
PY
