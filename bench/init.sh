#!/usr/bin/env bash
# Benchmark: our init against tini-static, dumb-init and catatonit (Debian's
# packages: tini, dumb-init, catatonit), on the same workloads, in one run.
# Run as root (it creates PID namespaces):   bench/init.sh
# Needs gcc and unshare. INIT_BIN overrides the binary under test (default:
# the release build, built here if missing). Takes one to two minutes.
#
# Figures:
#   size            binary size, KiB                                (lower is better)
#   idle RSS        VmRSS while the child sleeps, KiB                (lower is better)
#   idle wakeups    context switches of the idle init over 5 s       (lower is better)
#   start           wall time of one `X -- true` (a static `true`), µs   (lower)
#                   (printed below the table: a bare `true` for reference)
#   signal latency  kill(init, USR1) -> child replies on a pipe, median µs (lower)
#   reaping         orphans/s: 5000 orphans released at once, until all
#                   are reaped, init as PID 1 of a new PID namespace  (higher)
# Timed figures take the best of interleaved rounds, as other work on the
# machine adds noise.
# The ratio column is ours / best peer; for the size, the best static peer
# (Debian's dumb-init is dynamically linked and needs libc.so besides).
set -euo pipefail

if [[ $EUID -ne 0 ]]; then
    echo "bench/init.sh: run as root (it creates PID namespaces)" >&2
    exit 1
fi
for tool in gcc unshare; do
    command -v "$tool" >/dev/null || { echo "bench/init.sh: $tool is missing" >&2; exit 1; }
done

repo=$(cd "$(dirname "$0")/.." && pwd)
ours=${INIT_BIN:-${CARGO_TARGET_DIR:-$repo/target}/x86_64-unknown-linux-musl/release/init}
if [[ ! -x $ours ]]; then
    (cd "$repo" && cargo build --release -p init >&2)
fi

names=(init tini-static dumb-init catatonit)
declare -A bins=([init]=$ours [tini-static]=/usr/bin/tini-static [dumb-init]=/usr/bin/dumb-init
    [catatonit]=/usr/bin/catatonit)
for name in "${names[@]}"; do
    [[ -x ${bins[$name]} ]] || { echo "bench/init.sh: ${bins[$name]} is missing (apt-get install tini dumb-init catatonit)" >&2; exit 1; }
done

work=$(mktemp -d)
idle_pids=()
cleanup() {
    for pid in "${idle_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
gcc -O2 -o "$work/workloads" "$repo/bench/init-workloads.c"
w=$work/workloads

declare -A size rss wake start signal reap

# Idle figures: all four idle side by side, measured over the same 5 s.
for name in "${names[@]}"; do
    size[$name]=$(( $(stat -c %s "${bins[$name]}") / 1024 ))
    "${bins[$name]}" -- sleep 1000 2>/dev/null &
    idle_pids+=($!)
done
sleep 1
switches() { awk '/ctxt_switches/ { n += $2 } END { print n }' "/proc/$1/status"; }
declare -A before
for i in "${!names[@]}"; do before[${names[$i]}]=$(switches "${idle_pids[$i]}"); done
sleep 5
for i in "${!names[@]}"; do
    name=${names[$i]} pid=${idle_pids[$i]}
    wake[$name]=$(( $(switches "$pid") - before[$name] ))
    rss[$name]=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
    kill "$pid"
done
wait 2>/dev/null || true
idle_pids=()

# Start overhead: 200 runs each against a bare static `true`, in 3 interleaved
# rounds; the best round counts (the machine may be busy with other work).
printf 'int main(void) { return 0; }\n' > "$work/true.c"
gcc -O2 -static -o "$work/true" "$work/true.c"
declare -A best_start=()
for _ in 1 2 3; do
    for name in bare "${names[@]}"; do
        if [[ $name == bare ]]; then
            t=$("$w" startloop 200 "$work/true")
        else
            t=$("$w" startloop 200 "${bins[$name]}" -- "$work/true" 2>/dev/null)
        fi
        if [[ -z ${best_start[$name]:-} ]] || awk -v t="$t" -v b="${best_start[$name]}" 'BEGIN { exit !(t < b) }'; then
            best_start[$name]=$t
        fi
    done
done
for name in "${names[@]}"; do
    start[$name]=$(awk -v t="${best_start[$name]}" 'BEGIN { printf "%.0f", t }')
done

# Signal forwarding: 3000 round trips each, median.
for name in "${names[@]}"; do
    read -r median _ < <("$w" sigdriver 3000 "${bins[$name]}" -- "$w" sigchild 2>/dev/null)
    signal[$name]=$median
done

# Reaping: 5000 orphans, init as PID 1; 5 interleaved rounds, best counts.
for name in "${names[@]}"; do reap[$name]=0; done
for _ in 1 2 3 4 5; do
    for name in "${names[@]}"; do
        r=$(unshare --fork --pid --mount-proc "${bins[$name]}" -- "$w" orphans 5000 2>/dev/null)
        (( r > reap[$name] )) && reap[$name]=$r
    done
done

# The table: figures, and ours / best peer.
row() { # label, direction (low|high), array name, [peers to compare with]
    local label=$1 dir=$2
    local -n values=$3
    local peers=(${4:-${names[@]:1}})
    local best="" v
    for name in "${peers[@]}"; do
        v=${values[$name]}
        if [[ -z $best ]] || awk -v v="$v" -v b="$best" -v d="$dir" \
            'BEGIN { exit !((d == "low" && v < b) || (d == "high" && v > b)) }'; then
            best=$v
        fi
    done
    local ratio
    ratio=$(awk -v o="${values[init]}" -v b="$best" 'BEGIN { if (b == 0) print (o == 0 ? "1.00" : "inf"); else printf "%.2f", o / b }')
    printf "| %-28s | %9s | %11s | %9s | %9s | %9s |\n" "$label" "${values[init]}" \
        "${values[tini-static]}" "${values[dumb-init]}" "${values[catatonit]}" "$ratio"
}
printf "| %-28s | %9s | %11s | %9s | %9s | %9s |\n" figure init tini-static dumb-init catatonit "ours/best"
printf "|%s|%s|%s|%s|%s|%s|\n" "------------------------------" "-----------" "-------------" "-----------" "-----------" "-----------"
row "binary size, KiB (low)" low size "tini-static catatonit"
row "idle RSS, KiB (low)" low rss
row "idle wakeups in 5 s (low)" low wake
row "start X -- true, us (low)" low start
row "signal round trip, us (low)" low signal
row "reaping, orphans/s (high)" high reap
printf "\nA bare static true takes %.0f us; Debian's dumb-init is dynamically linked.\n" "${best_start[bare]}"
