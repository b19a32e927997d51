#!/usr/bin/env bash
# The log path: a service writes numbered 100-byte lines as fast as it can for
# SECS seconds (busybox awk); the daemon timestamps them into its log file.
# Prints lines/s and MB/s through the daemon, the daemon's CPU time per MB,
# and the same generator into `cat > file` on the host as the floor. Checks
# that no line was lost: the kept files (the live one and its 3 rotations)
# hold a gapless run of numbers that ends with the generator's last line.
#   bench/logs.sh          # SECS=10
# Needs root. Uses the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
target=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release
cargo build --release -q -p supervisor -p init
bin=$target/supervisor
dir=$(mktemp -d /tmp/supervisor-logs.XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

# 9 digits, a space, 89 x and the newline: 100 bytes. Ends with `END count`.
generator='BEGIN {
    pad = sprintf("%89s", ""); gsub(/ /, "x", pad)
    end = systime() + '"$SECS"'
    while (1) {
        for (i = 0; i < 1000; i++) printf "%09d %s\n", n++, pad
        if (systime() >= end) break
    }
    printf "END %d\n", n
}'
printf '%s\n' "$generator" >"$dir/gen.awk"

# The floor: the same generator into a file through cat.
start=$(date +%s.%N)
/bin/busybox awk -f "$dir/gen.awk" | cat >"$dir/floor.out"
end=$(date +%s.%N)
floor_lines=$(tail -n 1 "$dir/floor.out" | awk '{ print $2 }')
floor_rate=$(echo "$floor_lines / ($end - $start)" | bc -l)

"$bin" image build-busybox bench --images-dir "$dir/images" >/dev/null
mkdir -p "$dir/gen"
cp "$dir/gen.awk" "$dir/gen/"
cat >"$dir/services.yaml" <<EOF
state_dir: $dir/state
images_dir: $dir/images
cgroup_parent: supervisor-logs-$$
services:
  chatty:
    image: bench
    command: [awk, -f, /gen/gen.awk]
    restart: never
    autostart: false
    mounts:
      - {source: $dir/gen, target: /gen, readonly: true}
EOF
SUPERVISOR_LOG=warn "$bin" daemon -c "$dir/services.yaml" 2>"$dir/daemon.log" &
pid=$!
sv() { "$bin" --state-dir "$dir/state" "$@"; }
until sv status >/dev/null 2>&1; do sleep 0.05; done
cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
ticks=$(getconf CLK_TCK)
cpu_before=$(cpu)
start=$(date +%s.%N)
sv start chatty
until sv status chatty --json | grep -q '"state": "exited"'; do sleep 0.05; done
end=$(date +%s.%N)
cpu_after=$(cpu)

log=$dir/state/logs/chatty.log
files=()
for n in 3 2 1; do [ -f "$log.$n" ] && files+=("$log.$n"); done
files+=("$log")
lines=$(grep -h ' END ' "${files[@]}" | awk '{ print $3 }')
# Numbers in the kept files, in order: each one more than the last.
gaps=$(cat "${files[@]}" | awk '$2 ~ /^[0-9]+$/ { n = $2 + 0; if (seen && n != last + 1) gaps++; last = n; seen = 1 }
    END { print gaps + 0, last }')
read -r gap_count last <<<"$gaps"
rate=$(echo "$lines / ($end - $start)" | bc -l)
mb=$(echo "$lines * 100 / 1000000" | bc -l)
cpu_ms_per_mb=$(echo "($cpu_after - $cpu_before) * 1000 / $ticks / $mb" | bc -l)

printf '| path | lines/s | MB/s | daemon CPU ms per MB | lines |\n|---|---:|---:|---:|---:|\n'
printf '| `awk | cat > file` (floor) | %.0f | %.1f | - | %d |\n' "$floor_rate" "$(echo "$floor_rate * 100 / 1000000" | bc -l)" "$floor_lines"
printf '| service → daemon → log | %.0f | %.1f | %.1f | %d |\n' "$rate" "$(echo "$rate * 100 / 1000000" | bc -l)" "$cpu_ms_per_mb" "$lines"
printf '\nthrough the daemon: %.2f of the floor; kept files: %d gaps, last line %d of %d\n' \
    "$(echo "$rate / $floor_rate" | bc -l)" "$gap_count" "$last" "$((lines - 1))"
[ "$gap_count" = 0 ] && [ "$last" = $((lines - 1)) ] || { echo "logs.sh: lines lost" >&2; exit 1; }
