#!/bin/sh
# PID 1 of the PV guest: brings eth0 up, then makes the load the Xen test measures:
# - a CPU burner that stops when Domain-0 connects to port 5002, so it does not slow the
#   emulated machine during the bandwidth steps;
# - a paced UDP stream to Domain-0 (1400-byte datagrams, so netback's credit meters it finely):
#   the vif's egress. The pacing keeps it mostly asleep, so CFS runs it promptly beside the burner.
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "GUEST-UP uptime=$(cut -d' ' -f1 /proc/uptime)"
insmod /lib/modules/xen-netfront.ko 2>&1
sleep 1
ip link set eth0 up && ip addr add 10.99.0.2/24 dev eth0 && echo "GUEST eth0 up"
/vibra-host-load burn-until-connect 5002 1800 &
/vibra-host-load udp-send 10.99.0.1:5000 1800 400000 &
echo "GUEST-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
while true; do sleep 3600; done
