#!/bin/sh
# Runs in Domain-0 after dom0-netif.sh (same boot; xenbr0 10.99.0.1/24 up; the patched
# xen-netback loaded): `vibra-lab reproduce fig6.5-xen`, figures 6.5/6.6 in real Xen guests.
# Boots GUESTS game-server guests (128 MiB PV, guest-init.sh vibra_netif=game-patched|game-stock,
# alternately: odd ones load the patched netfront and get host arrival stamps, even ones the stock
# netfront and stamp in their own kernel), each running `vibra-game serve IP:7000 SEED`, then runs
# vibra-lab in a network namespace behind a veth in xenbr0 (the clients' inputs take the host's
# receive path); vibra-lab starts the CPU burners in Domain-0, drives the clients and fetches
# each guest's records. GUESTS and the vibra-lab mode come from /vibra/fig65.conf (written by
# build-initramfs.sh). Every line starts "VIBRA-XEN-FIG65"; a failed step prints
# "VIBRA-XEN-FIG65 FAILED: <step>" and .ci/xen.sh checks the rows and their ordering.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
IP=/usr/local/sbin/ip
NBP=/sys/module/xen_netback/parameters
NS=g65
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "VIBRA-XEN-FIG65 $*"; }
GUESTS=4; MODE=--quick; SUBSTEPS=3000
[ -r /vibra/fig65.conf ] && . /vibra/fig65.conf
say "start uptime=$(up) guests=$GUESTS mode=${MODE:-full} substeps=$SUBSTEPS"
[ -e $NBP/rx_ts_sent ] || say "FAILED: the patched xen-netback is not loaded"
# The test-only record log (dom0-netif.sh) costs a spinlock per record: off for the figure.
[ -e $NBP/rx_ts_log ] && echo 0 > $NBP/rx_ts_log
sent0=$(cat $NBP/rx_ts_sent 2>/dev/null || echo 0); host0=$(cat $NBP/rx_ts_host 2>/dev/null || echo 0)
{ $IP netns add $NS && $IP link add g65a type veth peer name g65b && $IP link set g65b netns $NS \
  && $IP link set g65a master xenbr0 && $IP link set g65a up \
  && $IP -n $NS addr add 10.99.0.200/24 dev g65b && $IP -n $NS link set g65b up \
  && $IP -n $NS link set lo up; } || say "FAILED: veth g65a/g65b with namespace $NS in xenbr0"

LIST=
i=1
while [ $i -le "$GUESTS" ]; do
  gip=10.99.0.$((20 + i))
  if [ $((i % 2)) = 1 ]; then nf=patched; kind=host; else nf=stock; kind=kernel; fi
  cat > /tmp/g65-$i.cfg <<CFG
name    = "g65-$i"
type    = "pv"
kernel  = "/guest/vmlinuz"
ramdisk = "/guest/initrd.cpio"
extra   = "console=hvc0 quiet vibra_netif=game-$nf vibra_ip=$gip vibra_game=$((20 + i)) vibra_game_steps=$SUBSTEPS"
memory  = 128
vcpus   = 1
vif     = [ 'bridge=xenbr0,mac=00:16:3e:00:65:$(printf %02x $i)' ]
CFG
  # Under QEMU's -cpu max, xl create failed now and then ("unable to XZ decompress kernel",
  # "malloc(): corrupted top size" in xl itself: Domain-0's memory corrupted, see .ci/xen.sh);
  # .ci/xen.sh boots -cpu qemu64 now. Still tried up to three times, a leftover half-built
  # domain destroyed in between, with a note in the serial log when a retry was needed.
  for try in 1 2 3; do
    xl create /tmp/g65-$i.cfg >/dev/null && break
    say "note: xl create g65-$i failed (try $try)"; xl destroy g65-$i 2>/dev/null; sleep 2
  done
  if xl domid g65-$i >/dev/null 2>&1; then
    LIST="$LIST${LIST:+,}$kind@$gip:7000/$((20 + i))"
  else
    say "FAILED: xl create g65-$i (3 tries)"
  fi
  i=$((i + 1))
done
say "guests created uptime=$(up): $LIST"
i=1; t=0
while [ $i -le "$GUESTS" ] && [ $t -lt 900 ]; do
  if ! xl domid g65-$i >/dev/null 2>&1 || grep -q GAME-SERVER /var/log/xen/console/guest-g65-$i.log 2>/dev/null; then
    i=$((i + 1))
  else
    sleep 2; t=$((t + 2))
  fi
done
if [ $i -le "$GUESTS" ]; then
  say "FAILED: guest g65-$i never started its game server (900 s)"
  cat /var/log/xen/console/guest-g65-$i.log
else
  say "guests ready uptime=$(up)"
  i=1
  while [ $i -le "$GUESTS" ]; do
    d=$(xl domid g65-$i 2>/dev/null) || { i=$((i + 1)); continue; }
    be=$(xenstore-read /local/domain/0/backend/vif/$d/0/feature-rx-timestamp 2>/dev/null || echo absent)
    say "g65-$i dom $d: backend feature-rx-timestamp=$be"
    if [ $((i % 2)) = 1 ]; then want=1; else want=absent; fi
    [ "$be" = "$want" ] || say "FAILED: g65-$i: feature-rx-timestamp $be, expected $want"
    i=$((i + 1))
  done
  rm -rf /tmp/fig65
  $IP netns exec $NS env VIBRA_XEN_GAME_GUESTS="$LIST" VIBRA_REQUIRE_PRIVILEGED=1 \
    /vibra/vibra-lab reproduce fig6.5-xen $MODE --json --generated-urls --out /tmp/fig65 \
    > /tmp/fig65.out 2> /tmp/fig65.err
  rc=$?
  sed 's/^/VIBRA-XEN-FIG65 stderr: /' /tmp/fig65.err
  sed 's/^/VIBRA-XEN-FIG65 json: /' /tmp/fig65.out
  sed 's/^/VIBRA-XEN-FIG65 report: /' /tmp/fig65/fig6.5-xen.json 2>/dev/null
  say "vibra-lab rc=$rc uptime=$(up)"
  [ $rc = 0 ] || say "FAILED: vibra-lab reproduce fig6.5-xen exited with $rc"
fi
say "netback records sent=$(( $(cat $NBP/rx_ts_sent 2>/dev/null || echo 0) - sent0 )) host=$(( $(cat $NBP/rx_ts_host 2>/dev/null || echo 0) - host0 ))"
i=1
while [ $i -le "$GUESTS" ]; do
  grep -v '^GAME' /var/log/xen/console/guest-g65-$i.log 2>/dev/null | grep -i -E 'error|segfault|traps:' | sed "s/^/VIBRA-XEN-FIG65 g65-$i console: /"
  xl destroy g65-$i 2>/dev/null || say "FAILED: xl destroy g65-$i"
  i=$((i + 1))
done
$IP link del g65a 2>/dev/null; $IP netns del $NS 2>/dev/null
say "end uptime=$(up)"
