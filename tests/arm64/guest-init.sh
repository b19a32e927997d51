#!/bin/busybox sh
# PID 1 of the arm64 test VM (tests/arm64/run.sh). Stage 1 runs in the initramfs and copies
# it to a tmpfs, because pivot_root(2), which every service's setup uses, cannot leave the
# initramfs's rootfs; stage 2 runs there, mounts what the tests need (pure cgroup v2),
# runs /guest-tests.sh, prints its status tagged with the run's nonce and powers off.
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
if [ "$1" != stage2 ]; then
    mkdir -p /newroot
    mount -t tmpfs -o size=1g,mode=755 root /newroot
    for entry in /*; do
        case $entry in /newroot | /proc | /sys | /dev) ;; *) cp -a "$entry" /newroot/ ;; esac
    done
    mkdir -p /newroot/proc /newroot/sys /newroot/dev
    exec switch_root /newroot /init stage2
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run /root /var/tmp
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done
hostname arm64-guest
ip link set lo up
echo "arm64 guest: $(uname -m) $(uname -r), $(nproc) CPUs, up $(cut -d' ' -f1 /proc/uptime)s"
sh /guest-tests.sh </dev/null 2>&1
status=$?
echo "arm64-guest-status-$(cat /etc/nonce)=$status"
sync
poweroff -f
