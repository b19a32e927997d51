# Sourced by the daemon benchmarks (adopt, daemon, health, soak): the release
# build, a scratch directory with a busybox image named `bench`, and at exit the
# daemon ($pid, if the script started one) stopped and the directory removed.
#   bench_setup NAME   sets bin, dir (/tmp/supervisor-NAME.XXXXXX), parent
#                      (a cgroup_parent of this run) and pid (empty)
#   service_file_head  prints state_dir, images_dir, cgroup_parent and `services:`

bench_setup() {
    local target=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release
    cargo build --release -q -p supervisor -p init
    bin=$target/supervisor
    dir=$(mktemp -d "/tmp/supervisor-$1.XXXXXX")
    parent=supervisor-$1-$$
    pid=
    trap bench_cleanup EXIT
    "$bin" image build-busybox bench --images-dir "$dir/images" >/dev/null
}

bench_cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    rm -rf "$dir"
}

service_file_head() {
    echo "state_dir: $dir/state"
    echo "images_dir: $dir/images"
    echo "cgroup_parent: $parent"
    echo "services:"
}
