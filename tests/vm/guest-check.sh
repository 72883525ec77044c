#!/bin/sh
# Runs as init (PID 1) inside a VM whose root disk is an image built by oci2ext4: checks what
# the guest kernel and the image's own binaries see, writes to the disk, and powers off.
# Every line meant for the host starts with "OCI2EXT4:".
say() { echo "OCI2EXT4: $*"; }
fail() { say "FAIL $*"; sync; echo o > /proc/sysrq-trigger; sleep 10; }

mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev 2>/dev/null
say "kernel $(uname -r)"
grep ' / ' /proc/mounts | grep -q 'ext4 rw' || fail "root is not mounted read-write: $(grep ' / ' /proc/mounts)"
say "root $(grep ' / ' /proc/mounts)"

# Ownership, setuid and capabilities as the packages made them.
[ "$(stat -c %a /usr/bin/passwd)" = 4755 ] || fail "passwd mode $(stat -c %a /usr/bin/passwd)"
[ "$(stat -c %u:%g /usr/bin/passwd)" = 0:0 ] || fail "passwd owner"
if [ -x /usr/bin/ping ] && command -v getcap >/dev/null; then
    getcap /usr/bin/ping | grep -q cap_net_raw || fail "ping lost its capability: $(getcap /usr/bin/ping)"
    say "ping $(getcap /usr/bin/ping)"
fi
[ "$(stat -c %a /tmp)" = 1777 ] || fail "/tmp mode"

# The image's own programs run.
dpkg-query -W -f='${Package} ${Version}\n' coreutils dpkg >/dev/null || fail "dpkg-query"
say "$(dpkg-query -W -f='${Package} ${Version}' coreutils)"
say "$(ls /usr/bin | wc -l) programs in /usr/bin, $(find / -xdev | wc -l) entries"

# Writing: users, files, renames, deletes, hard links, a big file.
useradd -m -u 1500 guestuser || fail "useradd"
su guestuser -s /bin/sh -c 'echo from-user > ~/note && id -u' | grep -q 1500 || fail "su"
[ "$(stat -c %u /home/guestuser/note)" = 1500 ] || fail "file owner"
mkdir -p /var/tmp/work || fail mkdir
i=0
while [ $i -lt 300 ]; do
    echo "line $i" > /var/tmp/work/f$i
    i=$((i + 1))
done
for f in /var/tmp/work/f1*; do mv "$f" "$f.renamed"; done
rm -f /var/tmp/work/f2*
ln /var/tmp/work/f5 /var/tmp/work/f5-link || fail "hard link"
dd if=/dev/urandom of=/var/tmp/big bs=1M count=64 2>/dev/null || fail "big write"
setfacl -m u:1500:rw /var/tmp/big 2>/dev/null && getfacl /var/tmp/big | grep -q 'user:guestuser:rw-' && say "acl set"
sync
# A clean shutdown: the journal is checkpointed and the filesystem marked clean.
mount -o remount,ro / || fail "remount read-only"
say "OK"
echo o > /proc/sysrq-trigger
sleep 10
