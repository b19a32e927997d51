#!/usr/bin/env bash
# What a network costs, all inside a network namespace of its own (nothing of
# the host's network is touched):
#   start-to-exit of /bin/true (`supervisor run`) on a bridged network vs
#   `networks: []`, interleaved, with a daemon keeping the bridge and table up
#   (as on an appliance); median and p90 in ms;
#   TCP bulk transfer to a service through a published port (DNAT from the
#   namespace's own address) vs straight to the service's address; median
#   MB/s of RUNS transfers of 256 MiB each.
#
# Usage (as root):  bench/network.sh [RUNS]     (default 30 starts, RUNS/6 transfers)
# Binaries: BIN_DIR (default target/x86_64-unknown-linux-musl/release). Needs
# nft (nftables), python3, busybox, ip, unshare.
set -euo pipefail

runs=${1:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${BIN_DIR:-$here/target/x86_64-unknown-linux-musl/release}
supervisor=$bin_dir/supervisor

die() { echo "network.sh: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "run as root (namespaces, cgroups)"
[[ -x $supervisor && -x $bin_dir/init ]] ||
    die "$bin_dir/{supervisor,init} missing: cargo build --release -p supervisor -p init"
for tool in nft python3 busybox ip unshare; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# Everything below runs in a network namespace of its own.
if [[ ${BENCH_NETNS:-} != 1 ]]; then
    BENCH_NETNS=1 exec unshare --net "$0" "$@"
fi
ip link set lo up
ip link add h0 type veth peer name h1
ip addr add 192.0.2.10/24 dev h0
ip link set h0 up
ip link set h1 up

work=$(mktemp -d /tmp/bench-network.XXXXXX)
tag=bench-network-$$
daemon=
cleanup() {
    if [[ -n $daemon ]]; then
        "$supervisor" shutdown --state-dir "$work/state" >/dev/null 2>&1 || kill "$daemon"
        wait "$daemon" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$supervisor" image build-busybox busybox --images-dir "$work/images" >/dev/null
cat >"$work/services.yaml" <<EOF
state_dir: $work/state
images_dir: $work/images
cgroup_parent: $tag
networks:
  front: {subnet: 10.99.0.0/24}
services:
  sink:
    image: busybox
    command: while true; do nc -l -p 5000 >/dev/null; done
    networks: [front]
    ports: ["8080:5000"]
  bridged:
    image: busybox
    command: [/bin/true]
    autostart: false
    readonly_rootfs: true
    networks: [front]
  plain:
    image: busybox
    command: [/bin/true]
    autostart: false
    readonly_rootfs: true
    networks: []
EOF
"$supervisor" check -c "$work/services.yaml" >/dev/null
SUPERVISOR_LOG=warn "$supervisor" daemon -c "$work/services.yaml" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 200); do
    "$supervisor" status sink --json -c "$work/services.yaml" 2>/dev/null | grep -q '"running"' && break
    sleep 0.05
done
sink=$("$supervisor" status sink --json -c "$work/services.yaml" |
    sed -n 's/.*"front": "\([0-9.]*\)".*/\1/p')
[[ -n $sink ]] || die "the sink service did not start: $(cat "$work/daemon.log")"

# --- start to exit -------------------------------------------------------------
now() { date +%s%N; }
for _ in 1 2 3; do # warm up
    "$supervisor" run -c "$work/services.yaml" bridged >/dev/null
    "$supervisor" run -c "$work/services.yaml" plain >/dev/null
done
: >"$work/starts"
for _ in $(seq "$runs"); do
    for row in plain bridged; do
        t0=$(now)
        "$supervisor" run -c "$work/services.yaml" "$row" >/dev/null
        t1=$(now)
        echo "$row $(((t1 - t0) / 1000))" >>"$work/starts"
    done
done
stat() { # file row -> "median p90" (microseconds in, ms out)
    awk -v r="$2" '$1 == r { print $2 }' "$1" | sort -n | awk '
        { v[NR] = $1 }
        END { m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.5)]; printf "%.2f %.2f", m / 1000, p / 1000 }'
}
read -r plain_m plain_p <<<"$(stat "$work/starts" plain)"
read -r bridged_m bridged_p <<<"$(stat "$work/starts" bridged)"

# --- bulk transfer ---------------------------------------------------------------
transfer() { # host port -> MB/s of 256 MiB
    python3 - "$1" "$2" <<'PY'
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
chunk = memoryview(bytearray(1 << 20))
total = 256
for attempt in range(100):
    try:
        s = socket.create_connection((host, port), timeout=30)
        break
    except OSError:
        time.sleep(0.05)
t0 = time.monotonic()
for _ in range(total):
    s.sendall(chunk)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
print(f"{total * 1.048576 / (time.monotonic() - t0):.0f}")
PY
}
transfers=$(((runs + 5) / 6))
: >"$work/rates"
for _ in $(seq "$transfers"); do
    echo "direct $(transfer "$sink" 5000)" >>"$work/rates"
    echo "published $(transfer 192.0.2.10 8080)" >>"$work/rates"
done
median() { awk -v r="$2" '$1 == r { print $2 }' "$1" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
direct=$(median "$work/rates" direct)
published=$(median "$work/rates" published)

printf '%-44s %18s\n' "start to exit of /bin/true (supervisor run)" "median (p90) ms"
printf '%-44s %18s\n' "  networks: []" "$plain_m ($plain_p)"
printf '%-44s %18s\n' "  networks: [front] (bridge up)" "$bridged_m ($bridged_p)"
printf '%-44s %+18.2f\n' "  difference of the medians (ms)" "$(awk -v a="$bridged_m" -v b="$plain_m" 'BEGIN { print a - b }')"
printf '%-44s %18s\n' "TCP bulk transfer, 256 MiB ($transfers runs)" "median MB/s"
printf '%-44s %18s\n' "  straight to the service ($sink:5000)" "$direct"
printf '%-44s %18s\n' "  through the published port (192.0.2.10:8080)" "$published"
printf '%-44s %18s\n' "  published / straight" "$(awk -v a="$published" -v b="$direct" 'BEGIN { printf "%.2fx", a / b }')"
