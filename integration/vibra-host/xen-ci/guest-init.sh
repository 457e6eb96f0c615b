#!/bin/sh
# PID 1 of the PV guest. Two roles, chosen by the guest's kernel command line:
#
# default (tiny.cfg): brings eth0 up with the stock netfront, then makes the load the Xen test
# measures:
# - a CPU burner that stops when Domain-0 connects to port 5002, so it does not slow the
#   emulated machine during the bandwidth steps;
# - a paced UDP stream to Domain-0 (1400-byte datagrams, so netback's credit meters it finely):
#   the vif's egress. The pacing keeps it mostly asleep, so CFS runs it promptly beside the burner.
#
# vibra_netif=patched|stock (dom0-netif.sh): loads the patched netfront
# (integration/xen-netif-ts) or the stock one, and runs xen-rx-probe's receiver on UDP 6000,
# which prints the SO_TIMESTAMPNS stamps' checks; then the netfront's timestamp counters.
#
# vibra_netif=sender (dom0-netif.sh, the second guest): the stock netfront; xen-rx-probe's
# receiver on UDP 6000 answers Domain-0's clock exchange until Domain-0 sends it an 'end'
# datagram, then it sends 50 datagrams (tag guest2) through Domain-0's bridge to the receiver
# guest 10.99.0.2, then answers the clock exchange again until the next 'end'.
#
# vibra_netif=game-patched|game-stock (dom0-fig65.sh): the patched or the stock netfront, and
# one model game server, `vibra-game serve IP:7000 SEED STEPS` (vibra_game=SEED,
# vibra_game_steps=STEPS), for `vibra-lab reproduce fig6.5-xen`.
#
# vibra_ip=A.B.C.D sets eth0's address (default 10.99.0.2).
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "GUEST-UP uptime=$(cut -d' ' -f1 /proc/uptime)"
case " $(cat /proc/cmdline) " in
  *" vibra_netif=patched "*) NETIF=patched; NF=/lib/modules/vibra/xen-netfront.ko ;;
  *" vibra_netif=stock "*) NETIF=stock; NF=/lib/modules/xen-netfront.ko ;;
  *" vibra_netif=sender "*) NETIF=sender; NF=/lib/modules/xen-netfront.ko ;;
  *" vibra_netif=game-patched "*) NETIF=game; NF=/lib/modules/vibra/xen-netfront.ko ;;
  *" vibra_netif=game-stock "*) NETIF=game; NF=/lib/modules/xen-netfront.ko ;;
  *) NETIF=; NF=/lib/modules/xen-netfront.ko ;;
esac
insmod "$NF" 2>&1
sleep 1
GIP=$(sed -n 's/.* vibra_ip=\([0-9.]*\).*/\1/p' /proc/cmdline)
GIP=${GIP:-10.99.0.2}
ip link set eth0 up && ip addr add "$GIP/24" dev eth0 && echo "GUEST eth0 up ($GIP)"
if [ "$NETIF" = sender ]; then
  echo "NETIF-SENDER netfront=stock ip=$GIP"
  (
    /xen-rx-probe recv 6000 1 600
    /xen-rx-probe send 10.99.0.2:6000 50 20 guest2
    /xen-rx-probe recv 6000 1 300
    dmesg | grep -i -E 'segfault|traps:' | sed 's/^/NETIF-SENDER dmesg: /'
    echo "NETIF-SENDER done"
  ) &
  sleep 1
elif [ "$NETIF" = game ]; then
  SEED=$(sed -n 's/.* vibra_game=\([0-9]*\).*/\1/p' /proc/cmdline)
  STEPS=$(sed -n 's/.* vibra_game_steps=\([0-9]*\).*/\1/p' /proc/cmdline)
  /vibra-game serve "$GIP:7000" "${SEED:-1}" ${STEPS:+"$STEPS"} &
  sleep 1
elif [ -n "$NETIF" ]; then
  echo "NETIF-GUEST netfront=$NETIF"
  (
    /xen-rx-probe recv 6000 1000 150
    for c in rx_ts_applied rx_ts_local rx_ts_invalid rx_ts_unexpected; do
      echo "NETIF-GUEST $c=$(cat /sys/module/xen_netfront/parameters/$c 2>/dev/null || echo none)"
    done
    dmesg | grep -i -E 'arrival timestamps|segfault|traps:' | sed 's/^/NETIF-GUEST dmesg: /'
    echo "NETIF-GUEST done"
  ) &
  sleep 1
else
  /vibra-host-load burn-until-connect 5002 1800 &
  /vibra-host-load udp-send 10.99.0.1:5000 1800 400000 &
fi
echo "GUEST-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
while true; do sleep 3600; done
