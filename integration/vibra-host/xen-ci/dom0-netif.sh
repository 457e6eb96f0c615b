#!/bin/sh
# Runs in Domain-0 after dom0-tests.sh (same boot, xenbr0 10.99.0.1/24 up, guest "tiny" gone):
# the interoperability matrix of the patched xen-netback / xen-netfront (integration/xen-netif-ts)
# with the stock ones, one 128 MiB receiver guest at a time (plus a sender guest in nts-pp):
#   stock back end   + patched front end  (no feature agreed, no record, networking as before)
#   patched back end + patched front end  (host arrival timestamps reach SO_TIMESTAMPNS)
#   patched back end + stock front end    (no feature agreed, no record ever sent)
# The guest (guest-init.sh, vibra_netif=...) runs xen-rx-probe's receiver on UDP 6000; Domain-0
# sends 50 datagrams itself (no host receive path: netback stamps them, flag LOCAL) and 50 from a
# network namespace over a veth in xenbr0 (they enter the host's receive path on the veth, so
# they carry the host's receive stamp across the bridge). With both patched, a second 128 MiB
# guest (guest-init.sh vibra_netif=sender, stock netfront, 10.99.0.4) sends 50 more through the
# bridge (they enter the host's receive path from its vif). The patched netback's test-only log
# (rx_ts_log, debugfs xen-netback/rx_ts_log) records the time it encoded for each packet, and
# `xen-rx-probe compare` checks that every stamp the guest read is that time truncated to the
# record's 16 us, with the LOCAL flag exactly on Domain-0's own datagrams, and that the sender
# guest's vif (stock frontend) never got a record. Then 3 x 10 more from Domain-0 while
# the patched netback makes every record malformed (its test-only rx_ts_corrupt: fraction 65535,
# an undefined flag bit, a high-resolution flag never agreed): the patched netfront must count
# and ignore them and deliver the datagrams, and the vif must keep working. Every check prints
# "VIBRA-XEN-NETIF <combo> ok: ..." or "VIBRA-XEN-NETIF <combo> FAILED: ..." for .ci/xen.sh.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
IP=/usr/local/sbin/ip
PROBE=/vibra/xen-rx-probe
NBP=/sys/module/xen_netback/parameters
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "VIBRA-XEN-NETIF $*"; }
# Busybox processes died of SIGSEGV now and then in this lab, in Domain-0 and in guests (none to
# two a boot in four boots under QEMU TCG's -cpu max on a loaded host; .ci/xen.sh boots
# -cpu qemu64 since that model was found to corrupt Domain-0's memory). The one the kernel logged with its
# address (the "segfault at 0 ... in busybox" lines are printed at the end of this script) died
# at start, in glibc's __ctype_init, reading a NULL locale pointer from the new process's TLS:
# not the command's doing. A command that dies of a signal (status >= 128) has not answered, so
# the checks and parsers below run it once more, with a note on stderr (the serial log),
# instead of reading a crash as a result.
# check COMBO DESCRIPTION CONDITION...: runs the condition (a test expression; a compound one
# as  eval '[ ... ] && [ ... ]'  so that all of it is the check's)
check() {
  c=$1; d=$2; shift 2
  "$@"; rc=$?
  if [ $rc -ge 128 ]; then
    echo "VIBRA-XEN-NETIF note: $c check died with status $rc, run again: $d" >&2
    "$@"; rc=$?
  fi
  if [ $rc = 0 ]; then say "$c ok: $d"; else say "$c FAILED: $d"; fi
}
counter() { cat "$NBP/$1" 2>/dev/null || echo 0; }
# lastmatch SED_SCRIPT FILE: the last line `sed -n SED_SCRIPT FILE` prints (sed run again once
# if it dies of a signal, see above).
lastmatch() {
  for try in 1 2; do
    out=$(sed -n "$1" "$2"); rc=$?
    if [ $rc -lt 128 ]; then [ -n "$out" ] && echo "${out##*
}"; return 0; fi
    echo "VIBRA-XEN-NETIF note: sed died with status $rc reading $2 (try $try)" >&2
  done
  return 1
}
# field TAG KEY: KEY=value from the guest's NETIF-PROBE line for TAG (empty if absent)
# (the console log has CRLF line ends)
field() { lastmatch "s/^NETIF-PROBE tag=$1 .* $2=\([^ ]*\).*/\1/p; s/^NETIF-PROBE tag=$1 $2=\([^ ]*\).*/\1/p" /tmp/glog; }
gfield() { lastmatch "s/^NETIF-GUEST $1=//p" /tmp/glog; }
# lo RANGE: the lower end of "[lo,hi]" (empty if RANGE is not one; no process, see above)
lo() { l=${1#\[}; l=${l%%,*}; case "$l" in ''|*[!0-9-]*) ;; *) echo "$l" ;; esac; }
# cross_ok AFTER_MINUS_STAMP_RANGE OFF_LO: min(after - stamp) - off_lo >= -CLOCK_TOL_NS. The
# guest's clock is Domain-0's plus an offset >= off_lo, so with steady clocks min(after - stamp)
# - off_lo < 0 would prove a stamp later than the guest's recv. Under QEMU TCG the two domains'
# clocks are not steady: Xen calibrates each emulated CPU's TSC against an emulated platform timer
# whose pace follows the host's load, and the offset measured before and after 2-3 s of traffic
# moved by up to 8.4 ms, with stamps up to 14 ms "late" in between (lab runs, host load 9-18).
# So the check allows 50 ms: it catches a stamp that is not the host's (seconds off, or the
# guest's own, which mult16 also catches), not a few milliseconds; send <= stamp, on Domain-0's
# one clock, is exact.
CLOCK_TOL_NS=50000000
cross_ok() { l=$(lo "$1"); [ -n "$l" ] && [ -n "$2" ] && [ $((l - $2)) -ge $((-CLOCK_TOL_NS)) ]; }
# send_cross_ok STAMP_MINUS_SEND_RANGE OFF_HI: the same for the sender guest's datagrams: its
# send time is on its own clock, Domain-0's plus an offset <= off_hi, so min(stamp - send) +
# off_hi < 0 would prove a stamp (Domain-0's clock) earlier than the send.
send_cross_ok() { l=$(lo "$1"); [ -n "$l" ] && [ -n "$2" ] && [ $((l + $2)) -ge $((-CLOCK_TOL_NS)) ]; }
# cmpfield TAG KEY: KEY=value from xen-rx-probe compare's line for TAG
cmpfield() { lastmatch "/^NETIF-PROBE compare tag=$1 /s/.* $2=\([^ ]*\).*/\1/p" /tmp/cmp; }
# wait_for FILE PATTERN SECONDS
wait_for() { j=0; while [ $j -lt $3 ]; do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 1; j=$((j+1)); done; grep -q "$2" "$1" 2>/dev/null; }
NBLOG=/sys/kernel/debug/xen-netback/rx_ts_log

echo "VIBRA-XEN-NETIF start uptime=$(up)"
grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug \
  || say "setup FAILED: mount debugfs (netback's record log)"
{ $IP netns add nsb && $IP link add vb0 type veth peer name vb1 && $IP link set vb1 netns nsb \
  && $IP link set vb0 master xenbr0 && $IP link set vb0 up \
  && $IP -n nsb addr add 10.99.0.3/24 dev vb1 && $IP -n nsb link set vb1 up \
  && $IP -n nsb link set lo up; } || say "setup FAILED: veth vb0/vb1 with namespace nsb in xenbr0"

swap_netback() {
  i=0
  while [ $i -lt 20 ]; do
    rmmod xen_netback 2>/dev/null && break
    sleep 1; i=$((i+1))
  done
  [ -d /sys/module/xen_netback ] && { say "setup FAILED: cannot unload xen_netback"; return 1; }
  insmod "$1" || { say "setup FAILED: insmod $1"; return 1; }
  echo "VIBRA-XEN-NETIF loaded $1"
}

# run_combo NAME BACKEND FRONTEND [SENDER]: boots guest NAME with the FRONTEND netfront (and
# the sender guest SENDER, if named), sends, collects.
run_combo() {
  name=$1; be=$2; fe=$3; snd=${4:-}
  LOG=/var/log/xen/console/guest-$name.log
  SLOG=/var/log/xen/console/guest-$snd.log
  cat > /tmp/$name.cfg <<CFG
name    = "$name"
type    = "pv"
kernel  = "/guest/vmlinuz"
ramdisk = "/guest/initrd.cpio"
extra   = "console=hvc0 quiet vibra_netif=$fe"
memory  = 128
vcpus   = 1
vif     = [ 'bridge=xenbr0,mac=00:16:3e:00:00:02' ]
CFG
  sent0=$(counter rx_ts_sent); host0=$(counter rx_ts_host); local0=$(counter rx_ts_local)
  echo "VIBRA-XEN-NETIF $name: backend=$be frontend=$fe xl create uptime=$(up)"
  if ! xl create /tmp/$name.cfg; then say "$name FAILED: xl create"; return; fi
  if [ -n "$snd" ]; then
    # Created while the receiver boots: the two boots overlap.
    cat > /tmp/$snd.cfg <<CFG
name    = "$snd"
type    = "pv"
kernel  = "/guest/vmlinuz"
ramdisk = "/guest/initrd.cpio"
extra   = "console=hvc0 quiet vibra_netif=sender vibra_ip=10.99.0.4"
memory  = 128
vcpus   = 1
vif     = [ 'bridge=xenbr0,mac=00:16:3e:00:00:04' ]
CFG
    echo "VIBRA-XEN-NETIF $name: sender guest $snd xl create uptime=$(up)"
    xl create /tmp/$snd.cfg || { say "$name FAILED: xl create $snd"; snd=; }
  fi
  if ! wait_for "$LOG" GUEST-READY 240; then
    say "$name FAILED: guest never became ready (240 s)"; cat "$LOG"; xl destroy "$name"
    [ -n "$snd" ] && xl destroy "$snd"; return
  fi
  if [ -n "$snd" ] && ! wait_for "$SLOG" GUEST-READY 240; then
    say "$name FAILED: sender guest $snd never became ready (240 s)"; cat "$SLOG"; xl destroy "$snd"; snd=
  fi
  domid=$(xl domid "$name")
  fekey=$(xenstore-read /local/domain/$domid/device/vif/0/feature-rx-timestamp 2>/dev/null || echo absent)
  bekey=$(xenstore-read /local/domain/0/backend/vif/$domid/0/feature-rx-timestamp 2>/dev/null || echo absent)
  echo "VIBRA-XEN-NETIF $name: guest ready uptime=$(up); xenstore frontend=$fekey backend=$bekey"
  ping -c 3 -W 3 10.99.0.2 >/dev/null 2>&1; pingrc=$?
  # The guest's clock minus Domain-0's (each Xen's wallclock read at boot plus system time; they
  # differ by seconds and drift apart by milliseconds under TCG): in [off_lo, off_hi], from the
  # sync exchange with the shortest round trip, measured before and after the datagrams; the
  # check below uses the smaller off_lo.
  skew1=$($PROBE skew 10.99.0.2:6000 20); echo "VIBRA-XEN-NETIF $name: before: $skew1"
  $PROBE send 10.99.0.2:6000 50 20 dom0
  $IP netns exec nsb $PROBE send 10.99.0.2:6000 50 20 bridged
  sskew1=; sskew2=; sdomid=
  if [ -n "$snd" ]; then
    sdomid=$(xl domid "$snd")
    echo "VIBRA-XEN-NETIF $name: sender $snd ready uptime=$(up)"
    # The sender's clock minus Domain-0's, before and after it sends; an 'end' starts its
    # datagrams, the next one ends its second clock exchange.
    sskew1=$($PROBE skew 10.99.0.4:6000 20); echo "VIBRA-XEN-NETIF $name: sender before: $sskew1"
    $PROBE send 10.99.0.4:6000 1 0 end >/dev/null
    wait_for "$SLOG" 'NETIF-PROBE sent tag=guest2' 120
    sskew2=$($PROBE skew 10.99.0.4:6000 20); echo "VIBRA-XEN-NETIF $name: sender after: $sskew2"
    $PROBE send 10.99.0.4:6000 1 0 end >/dev/null
  fi
  for k in 1 2 3; do
    [ "$be" = patched ] && echo $k > $NBP/rx_ts_corrupt
    $PROBE send 10.99.0.2:6000 10 20 bad$k
  done
  [ "$be" = patched ] && echo 0 > $NBP/rx_ts_corrupt
  skew2=$($PROBE skew 10.99.0.2:6000 20); echo "VIBRA-XEN-NETIF $name: after: $skew2"
  $PROBE send 10.99.0.2:6000 1 0 end >/dev/null    # the guest's probe prints its summary
  offlo=$(echo "$skew1 $skew2" | tr ' ' '\n' | sed -n 's/^off_lo=//p' | sort -n | head -1)
  soffhi=$(echo "$sskew1 $sskew2" | tr ' ' '\n' | sed -n 's/^off_hi=//p' | sort -n | tail -1)
  ping -c 3 -W 3 10.99.0.2 >/dev/null 2>&1; pingrc2=$?
  i=0
  while [ $i -lt 150 ]; do
    grep -q 'NETIF-GUEST done' "$LOG" 2>/dev/null && break
    sleep 1; i=$((i+1))
  done
  sent=$(( $(counter rx_ts_sent) - sent0 )); host=$(( $(counter rx_ts_host) - host0 ))
  loc=$(( $(counter rx_ts_local) - local0 ))
  # (the per-datagram NETIF-STAMP lines are compared below, not copied to the serial log)
  echo "----- guest $name console"; grep -v '^NETIF-STAMP' "$LOG"; echo "----- end guest $name console"
  tr -d '\r' < "$LOG" > /tmp/glog
  echo "VIBRA-XEN-NETIF $name: $(grep -c '^NETIF-STAMP' /tmp/glog) NETIF-STAMP lines from the guest"
  if [ -n "$snd" ]; then
    wait_for "$SLOG" 'NETIF-SENDER done' 30
    echo "----- guest $snd console"; cat "$SLOG"; echo "----- end guest $snd console"
    check "$name" "sender guest $snd (stock netfront, dom $sdomid) sent its datagrams" grep -q 'NETIF-SENDER done' "$SLOG"
  fi
  if [ "$be" = patched ]; then
    cat $NBLOG > /tmp/nblog 2>/dev/null || echo "VIBRA-XEN-NETIF $name: no netback log $NBLOG"
    echo "VIBRA-XEN-NETIF $name: netback log: $(wc -l < /tmp/nblog) records"
    $PROBE compare /tmp/nblog /tmp/glog "$domid" > /tmp/cmp 2>&1
    sed 's/^/VIBRA-XEN-NETIF '"$name"': /' /tmp/cmp
  fi
  echo "VIBRA-XEN-NETIF $name: netback records sent=$sent host=$host local=$loc"
  check "$name" "guest finished its probe" grep -q 'NETIF-GUEST done' "$LOG"
  check "$name" "ping 10.99.0.2 (rc=$pingrc)" [ "$pingrc" = 0 ]
  check "$name" "ping 10.99.0.2 after the bad-record phase (rc=$pingrc2)" [ "$pingrc2" = 0 ]
  bad=0; for k in 1 2 3; do v=$(field bad$k n); bad=$((bad + ${v:-0})); done
  check "$name" "datagrams delivered in the bad-record phase: $bad of 30" [ "$bad" -ge 27 ]
  for t in dom0 bridged ${snd:+guest2}; do
    n=$(field $t n); miss=$(field $t missing)
    check "$name" "$t datagrams received: ${n:-0} of 50" [ "${n:-0}" -ge 45 ]
    if [ "$be$fe" = patchedpatched ]; then
      check "$name" "$t: every datagram has a stamp (missing=$miss)" [ "${miss:-1}" = 0 ]
      check "$name" "$t: stamps are 16 us records: $(field $t mult16) of $n" [ "$(field $t mult16)" = "$n" ]
      ams=$(field $t after_minus_stamp)
      check "$name" "$t: stamp <= guest clock after recv, across the clocks: min(after-stamp) $(lo "$ams") ns - off_lo ${offlo:-?} ns >= -$CLOCK_TOL_NS (after-stamp ns $ams)" \
        cross_ok "$ams" "$offlo"
      sms=$(field $t stamp_minus_send)
      if [ "$t" = guest2 ]; then
        check "$name" "$t: send time (sender guest's clock) <= stamp, across the clocks: min(stamp-send) $(lo "$sms") ns + sender off_hi ${soffhi:-?} ns >= -$CLOCK_TOL_NS (stamp-send ns $sms)" \
          send_cross_ok "$sms" "$soffhi"
      else
        check "$name" "$t: send time <= stamp (16 us record): $(field $t send_le) of $n, stamp-send ns $sms" \
          [ "$(field $t send_le)" = "$n" ]
      fi
      # netback's log: the stamp is the time netback encoded for this very packet.
      cn=$(cmpfield $t n); ce=$(cmpfield $t equal); cl=$(cmpfield $t logged); cloc=$(cmpfield $t local)
      check "$name" "$t: stamp = netback's logged time truncated to 16 us: $ce of $cn stamps (found in the log: $cl), logged-stamp ns $(cmpfield $t diff_ns)" \
        eval '[ -n "$cn" ] && [ "$cn" = "$n" ] && [ "$cl" = "$cn" ] && [ "$ce" = "$cn" ]'
      if [ "$t" = dom0 ]; then
        check "$name" "$t: logged records flagged LOCAL (netback's time, no host receive path): $cloc of $cl" eval '[ -n "$cl" ] && [ "$cloc" = "$cl" ]'
      else
        check "$name" "$t: logged records carrying a host receive stamp (not LOCAL): $((${cl:-0} - ${cloc:-0})) of $cl" eval '[ -n "$cl" ] && [ "$cloc" = 0 ]'
      fi
    fi
  done
  applied=$(gfield rx_ts_applied); glocal=$(gfield rx_ts_local)
  invalid=$(gfield rx_ts_invalid); unexp=$(gfield rx_ts_unexpected)
  case "$be$fe" in
    patchedpatched)
      check "$name" "xenstore: frontend asked, backend acknowledged ($fekey/$bekey)" [ "$fekey$bekey" = 11 ]
      nmin=100; [ -n "$snd" ] && nmin=150
      check "$name" "netfront applied host records: $applied (>= $nmin)" [ "${applied:-0}" -ge $nmin ]
      check "$name" "netfront LOCAL records: $glocal (>= 50: Domain-0's own datagrams)" [ "${glocal:-0}" -ge 50 ]
      check "$name" "netfront counted and ignored the malformed records: invalid=$invalid (>= $bad), unexpected=$unexp" \
        eval '[ "${invalid:-0}" -ge "$bad" ] && [ "$unexp" = 0 ]'
      hmin=50; [ -n "$snd" ] && hmin=100
      check "$name" "netback host receive stamps across the bridge: $host (>= $hmin)" [ "$host" -ge $hmin ]
      if [ -n "$snd" ]; then
        srec=$(sed -n "s/^NETIF-PROBE log dom=$sdomid records=//p" /tmp/cmp); srec=${srec:-0}
        check "$name" "netback logged no record for the sender guest's vif (stock frontend, dom $sdomid): $srec" [ "$srec" = 0 ]
      fi
      check "$name" "netback records sent: $sent (= host $host + local $loc)" [ "$sent" -eq $((host + loc)) ]
      ;;
    patchedstock)
      check "$name" "xenstore: no request, no acknowledgement ($fekey/$bekey)" [ "$fekey$bekey" = absentabsent ]
      check "$name" "netback sent no record to a frontend that did not ask: $sent" [ "$sent" = 0 ]
      ;;
    stockpatched)
      check "$name" "xenstore: frontend asked, stock backend silent ($fekey/$bekey)" [ "$fekey$bekey" = 1absent ]
      check "$name" "netfront applied=$applied invalid=$invalid unexpected=$unexp: no record" \
        [ "$applied$invalid$unexp" = 000 ]
      ;;
  esac
  xl destroy "$name" || say "$name FAILED: xl destroy"
  [ -n "$snd" ] && { xl destroy "$snd" || say "$name FAILED: xl destroy $snd"; }
}

# The stock netback is loaded at boot (dom0-tests.sh used it).
run_combo nts-sp stock patched
swap_netback /lib/modules/vibra/xen-netback.ko && {
  dmesg | grep -i 'vibra\|arrival timestamps' | sed 's/^/VIBRA-XEN-NETIF dom0 dmesg: /'
  echo 1 > $NBP/rx_ts_log || say "setup FAILED: enabling netback's record log"
  run_combo nts-pp patched patched nts-snd
  run_combo nts-ps patched stock
}
dmesg | grep -i -E 'segfault|traps:|general protection' | sed 's/^/VIBRA-XEN-NETIF dom0 dmesg: /'
echo "VIBRA-XEN-NETIF end uptime=$(up)"
