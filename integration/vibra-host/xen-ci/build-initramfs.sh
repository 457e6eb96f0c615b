#!/bin/bash
# Builds the Domain-0 and guest initramfs for booting Debian's Xen 4.17 under QEMU.
# Adapted from ../shared/xen-lab/build-initramfs.sh; adds the host-built test binary.
# usage: build-initramfs.sh WORK TEST_BIN LOAD_BIN NETIF_DIR PROBE_BIN
#   TEST_BIN runs in Domain-0, LOAD_BIN (vibra-host-load) in the guest.
#   NETIF_DIR holds the patched xen-netback.ko and xen-netfront.ko (integration/xen-netif-ts),
#   installed beside the stock ones under lib/modules/vibra/; PROBE_BIN (vtimestamp's
#   xen_rx_probe example) goes into both, for dom0-netif.sh.
#   WORK/stage = `dpkg -x` of the Xen, toolstack and kernel debs; outputs go to WORK/out.
# fig6.5-xen (dom0-fig65.sh), when VIBRA_FIG65_GAME and VIBRA_FIG65_LAB name the vibra-game and
#   vibra-lab binaries: vibra-game goes into the guest, vibra-lab and dom0-fig65.sh into Domain-0,
#   with /vibra/fig65.conf from VIBRA_FIG65_GUESTS (default 4) and VIBRA_FIG65_MODE (default
#   --quick; "full" for the full run).
set -euo pipefail
WORK=$1; TEST_BIN=$2; LOAD_BIN=$3; NETIF_DIR=$4; PROBE_BIN=$5
SRC=$(cd "$(dirname "$0")" && pwd)
ST=$WORK/stage
K=$(ls "$ST/lib/modules" | head -1)
OUT=$WORK/out
mkdir -p "$OUT"
XENBIN=/usr/lib/xen-4.17/bin
LIBDIR=/usr/lib/x86_64-linux-gnu

zcat "$ST/boot/xen-4.17-amd64.gz" > "$OUT/xen-4.17"     # QEMU's multiboot loader needs the ELF, not .gz
cp "$ST/boot/vmlinuz-$K" "$OUT/vmlinuz"

# ---- guest initramfs: busybox + netfront + guest-init.sh
G=$WORK/groot; rm -rf "$G"; mkdir -p "$G"/{bin,sbin,proc,sys,dev,tmp,lib/modules}
cp /bin/busybox "$G/bin/busybox"
for a in $(/bin/busybox --list | grep -vx busybox); do ln -sf busybox "$G/bin/$a"; done   # no busybox->busybox loop
cp "$ST/lib/modules/$K/kernel/drivers/net/xen-netfront.ko" "$G/lib/modules/"
mkdir -p "$G/lib/modules/vibra"
cp "$NETIF_DIR/xen-netfront.ko" "$G/lib/modules/vibra/"
cp "$SRC/guest-init.sh" "$G/init"; chmod +x "$G/init"
cp "$LOAD_BIN" "$G/vibra-host-load"
cp "$PROBE_BIN" "$G/xen-rx-probe"
mkdir -p "$G/lib64" "$G/lib/x86_64-linux-gnu"
ldd "$LOAD_BIN" "$PROBE_BIN" | awk '/=> \//{print $3}' | while read -r l; do cp -L "$l" "$G/lib/x86_64-linux-gnu/"; done
cp -L /lib64/ld-linux-x86-64.so.2 "$G/lib64/"
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$G/lib/x86_64-linux-gnu/"
if [ -n "${VIBRA_FIG65_GAME:-}" ]; then                    # fig6.5-xen's game server
  strip -o "$G/vibra-game" "$VIBRA_FIG65_GAME"            # (symbols off: xl copies the initrd into each guest)
  ldd "$VIBRA_FIG65_GAME" | awk '/=> \//{print $3}' | while read -r l; do cp -L "$l" "$G/lib/x86_64-linux-gnu/"; done
fi
(cd "$G" && find . | cpio -o -H newc --quiet) > "$OUT/guest-initrd.cpio"

# ---- Domain-0 initramfs
R=$WORK/root; rm -rf "$R"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,usr/local/sbin,proc,sys,dev,tmp,run,etc,root,guest,vibra} \
         "$R"/var/{lib/xen,lib/xenstored,log/xen/console,run/xen,lock,run/xenstored} \
         "$R/$LIBDIR" "$R/lib64" "$R/$XENBIN" "$R/lib/modules"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list | grep -vx busybox); do ln -sf busybox "$R/bin/$a"; done
for b in xl xenstored xenconsoled xen-init-dom0 libxl-save-helper xenstore-control xenconsole; do
  cp "$ST$XENBIN/$b" "$R$XENBIN/"
  ln -sf "$XENBIN/$b" "$R/usr/local/sbin/$b"
done
cp "$ST"/usr/bin/xenstore* "$R/usr/bin/" 2>/dev/null || true
cp -a "$ST/etc/xen" "$R/etc/"
cp -a "$ST/$LIBDIR/." "$R/$LIBDIR/"
cp /bin/bash "$R/bin/bash"                                   # the vif hotplug scripts need bash
cp /usr/sbin/ip /usr/sbin/tc /usr/sbin/bridge "$R/usr/local/sbin/"
cp "$TEST_BIN" "$R/vibra/xen-test"
# shared libraries, resolved against the staged Xen libraries first
LD_LIBRARY_PATH=$ST$LIBDIR ldd "$R$XENBIN"/* /bin/bash /usr/sbin/ip /usr/sbin/tc "$TEST_BIN" "$PROBE_BIN" 2>/dev/null \
  | awk '/=> \//{print $3} /ld-linux/{print $1}' | sort -u | while read -r l; do
  case "$l" in "$ST"*) ;; /*) cp -L "$l" "$R/$LIBDIR/" ;; esac
done
cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$R/$LIBDIR/"     # dlopen()ed by pthread_cancel (xl create) and Rust unwinding
ln -sf ../usr/lib/x86_64-linux-gnu "$R/lib/x86_64-linux-gnu"
for m in xen-evtchn xenfs xen-privcmd xen-gntdev xen-gntalloc xen-netback bridge sch_tbf veth; do
  /sbin/modprobe -d "$ST" -S "$K" --show-depends $m | awk '{print $2}'
done | awk '!s[$0]++' > "$R/lib/modules/order"
while read -r p; do cp "$p" "$R/lib/modules/"; done < "$R/lib/modules/order"
sed -i 's#.*/##' "$R/lib/modules/order"
mkdir -p "$R/lib/modules/vibra"
cp "$NETIF_DIR/xen-netback.ko" "$R/lib/modules/vibra/"    # swapped in by dom0-netif.sh
cp "$PROBE_BIN" "$R/vibra/xen-rx-probe"
cp "$OUT/vmlinuz" "$R/guest/vmlinuz"
cp "$OUT/guest-initrd.cpio" "$R/guest/initrd.cpio"
cat > "$R/guest/tiny.cfg" <<'CFG'
name    = "tiny"
type    = "pv"
kernel  = "/guest/vmlinuz"
ramdisk = "/guest/initrd.cpio"
extra   = "console=hvc0 quiet"
memory  = 128
vcpus   = 1
vif     = [ 'bridge=xenbr0,mac=00:16:3e:00:00:02,rate=10Mb/s' ]
CFG
cp "$SRC/dom0-init.sh" "$R/init"
cp "$SRC/dom0-tests.sh" "$R/dom0-tests.sh"
cp "$SRC/dom0-netif.sh" "$R/dom0-netif.sh"
chmod +x "$R/init" "$R/dom0-tests.sh" "$R/dom0-netif.sh"
# Extra Domain-0 files: each directory in VIBRA_DOM0_EXTRA (space-separated) is copied over the root.
for x in ${VIBRA_DOM0_EXTRA:-}; do cp -a "$x/." "$R/"; done
if [ -n "${VIBRA_FIG65_LAB:-}" ]; then                     # fig6.5-xen (dom0-fig65.sh)
  strip -o "$R/vibra/vibra-lab" "$VIBRA_FIG65_LAB"
  ldd "$VIBRA_FIG65_LAB" | awk '/=> \//{print $3}' | while read -r l; do cp -L "$l" "$R/$LIBDIR/"; done
  cp "$SRC/dom0-fig65.sh" "$R/dom0-fig65.sh"; chmod +x "$R/dom0-fig65.sh"
  mode=${VIBRA_FIG65_MODE:---quick}; [ "$mode" = full ] && mode=
  printf 'GUESTS=%s\nMODE=%s\n' "${VIBRA_FIG65_GUESTS:-4}" "$mode" > "$R/vibra/fig65.conf"
fi
(cd "$R" && find . | cpio -o -H newc --quiet) > "$OUT/dom0-initrd.cpio"
ls -la "$OUT"
