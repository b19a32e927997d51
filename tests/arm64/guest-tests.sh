# Runs inside the arm64 VM (tests/arm64/guest-init.sh, after the mounts).
set -u
failed=0

echo "== arm64: init integration tests"
# tests/support finds `init` in TEST_BIN_DIR. 1,000 orphans rather than 10,000 for the
# reaping test: 40,000 forks take 4.5 minutes under emulation.
if TEST_BIN_DIR=/opt/bin INIT_TEST_ORPHANS=1000 /opt/tests/init --test-threads=2; then
    echo "PASS: init tests"
else
    echo "FAIL: init tests"; failed=1
fi

echo "== arm64: supervisor run of a busybox service"
sv=/opt/bin/supervisor
if ! $sv image build-busybox busybox --images-dir /var/lib/supervisor/images; then
    echo "FAIL: image build-busybox"; failed=1
fi
out=$($sv run -c /etc/service.yaml hello 2>&1)
status=$?
echo "$out"
case "$status:$out" in
    "7:"*"hello from aarch64, parent pid 1, hostname hello"*) echo "PASS: supervisor run" ;;
    *) echo "FAIL: supervisor run (status $status)"; failed=1 ;;
esac
leftover=$(find /sys/fs/cgroup/arm64-test -maxdepth 0 2>/dev/null)
if [ -n "$leftover" ]; then
    echo "FAIL: supervisor run left its cgroup behind: $leftover"; failed=1
fi
exit $failed
