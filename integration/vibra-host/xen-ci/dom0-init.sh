#!/bin/sh
# PID 1 of Domain-0 (initramfs): starts xenstored, xen-init-dom0 and xenconsoled, runs
# /dom0-tests.sh, then powers off (QEMU exits). Adapted from ../shared/xen-lab/dom0-init.sh.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run; mkdir -p /run/xen /run/xenstored /var/run
mount -t tmpfs tmpfs /tmp
up() { cut -d' ' -f1 /proc/uptime; }
echo "XENLAB: dom0 init start, uptime=$(up)"
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m 2>&1 | grep -v 'File exists'; done
mkdir -p /proc/xen; mount -t xenfs xenfs /proc/xen
/usr/lib/xen-4.17/bin/xenstored --pid-file=/run/xenstored.pid || echo "VIBRA-XEN-CI FAILED: xenstored did not start"
/usr/lib/xen-4.17/bin/xen-init-dom0 || echo "VIBRA-XEN-CI FAILED: xen-init-dom0"
/usr/lib/xen-4.17/bin/xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || echo "VIBRA-XEN-CI FAILED: xenconsoled did not start"
echo "XENLAB: DOM0-READY uptime=$(up)"
/bin/sh /dom0-tests.sh 2>&1
echo "VIBRA-XEN-CI DONE uptime=$(up)"
sync
poweroff -f
