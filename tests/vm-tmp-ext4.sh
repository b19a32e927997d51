# Sourced in the pure-v2 VM before the tests: the guest's /tmp is a tmpfs,
# which Linux 6.1 cannot idmap (tmpfs can from 6.3), and the user namespace
# tests idmap images and bind sources in temp dirs. An ext4 /tmp, on a loop
# device backed by the guest's memory, can be.
modprobe loop 2>/dev/null || true
truncate -s 2G /dev/shm/tmp-ext4.img
mkfs.ext4 -q -F /dev/shm/tmp-ext4.img
mount -o loop /dev/shm/tmp-ext4.img /tmp
chmod 1777 /tmp
