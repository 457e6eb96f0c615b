#!/bin/sh
# Runs in Domain-0: bridge + listener, creates the PV guest, waits for it, runs the Xen
# backend's integration-test binary (built on the host), destroys the guest. Every failure
# prints "VIBRA-XEN-CI FAILED: <step>" for .ci/xen.sh to report.
# Busybox ash prefers its applets: call iproute2 by full path.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
IP=/usr/local/sbin/ip
up() { cut -d' ' -f1 /proc/uptime; }
xl info | grep -E 'xen_version|xen_scheduler' || echo "VIBRA-XEN-CI FAILED: xl info"
{ $IP link add name xenbr0 type bridge && $IP link set xenbr0 up && $IP addr add 10.99.0.1/24 dev xenbr0; } || echo "VIBRA-XEN-CI FAILED: bridge xenbr0"
echo "VIBRA-XEN-CI xl create start uptime=$(up)"
if ! xl create /guest/tiny.cfg; then
  echo "VIBRA-XEN-CI FAILED: xl create of the PV guest"
  exit 0
fi
i=0
while [ $i -lt 240 ]; do
  grep -q GUEST-READY /var/log/xen/console/guest-tiny.log 2>/dev/null && break
  sleep 1; i=$((i+1))
done
if ! grep -q GUEST-READY /var/log/xen/console/guest-tiny.log 2>/dev/null; then
  echo "VIBRA-XEN-CI FAILED: guest never became ready (240 s)"
  cat /var/log/xen/console/guest-tiny.log
  exit 0
fi
echo "VIBRA-XEN-CI guest ready uptime=$(up)"
sleep 3   # let the guest's UDP stream start
VIBRA_REQUIRE_XEN=1 VIBRA_XEN_GUEST=tiny VIBRA_XEN_GUEST_IP=10.99.0.2 RUST_BACKTRACE=1 \
  /vibra/xen-test --test-threads=1 --nocapture 2>&1
echo "VIBRA-XEN-CI test-binary rc=$?"
echo "----- guest console"; cat /var/log/xen/console/guest-tiny.log; echo "----- end guest console"
xl destroy tiny || echo "VIBRA-XEN-CI FAILED: xl destroy"
# vibrad's Xen backend (integration/vibrad/xen-ci/dom0-vibrad.sh), in the same boot.
[ -f /vibra/dom0-vibrad.sh ] && /bin/sh /vibra/dom0-vibrad.sh
# The patched xen-netback/xen-netfront matrix (integration/xen-netif-ts), in the same boot.
/bin/sh /dom0-netif.sh
# fig6.5-xen (dom0-fig65.sh), in the same boot, with the patched xen-netback left loaded.
[ -x /dom0-fig65.sh ] && /bin/sh /dom0-fig65.sh
