#!/usr/bin/env bash
# Builds the patched xen-netback (Domain-0) and xen-netfront (guest) modules out of tree for the
# Debian kernel that linux-image-amd64 depends on today (the one .ci/xen.sh boots): installs the
# matching linux-headers-<abi>-amd64 and linux-source-6.1, extracts the two drivers, applies
# patches/*.patch (failing with the patch, file and hunk named), copies include/vibra_netif_ts.h
# beside them and runs kbuild. Root, Debian 12 amd64.
# usage: build.sh OUT_DIR [linux-image-<abi>-amd64]
#   OUT_DIR/xen-netback.ko, OUT_DIR/xen-netfront.ko (debug info stripped) are the results;
#   OUT_DIR/src holds the patched sources and the kbuild trees. Nothing here is committed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[ $# -ge 1 ] && [ -n "$1" ] || { echo "usage: build.sh OUT_DIR [linux-image-<abi>-amd64]" >&2; exit 2; }
# Absolute: kbuild's M= needs it, and the script changes directory.
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
KPKG=${2:-$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')}
[ -n "$KPKG" ] || { echo "xen-netif-ts: cannot resolve the linux-image-amd64 ABI package" >&2; exit 1; }
ABI=${KPKG#linux-image-}
HDR=/usr/src/linux-headers-$ABI
export DEBIAN_FRONTEND=noninteractive
fail() { echo "xen-netif-ts build FAILED: $*" >&2; exit 1; }

if [ ! -d "$HDR" ] || [ ! -f /usr/src/linux-source-6.1.tar.xz ]; then
  apt-get install -y -qq --no-install-recommends "linux-headers-$ABI" linux-source-6.1 make gcc xz-utils patch >/dev/null \
    || fail "apt-get install linux-headers-$ABI linux-source-6.1"
fi
[ -d "$HDR" ] || fail "no $HDR after installing linux-headers-$ABI"
# The source must be the kernel's own version (Debian keeps them in lock-step; a mismatch means
# the mirror is mid-update and the modules might not match the booted kernel's code).
HV=$(dpkg-query -W -f='${Version}' "linux-headers-$ABI")
SV=$(dpkg-query -W -f='${Version}' linux-source-6.1)
[ "$HV" = "$SV" ] || fail "linux-headers-$ABI is $HV but linux-source-6.1 is $SV"
echo "xen-netif-ts: kernel $ABI, source $SV"

SRC=$OUT/src
rm -rf "$SRC" && mkdir -p "$SRC"
tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$SRC" --strip-components=1 --wildcards \
  'linux-source-6.1/drivers/net/xen-netfront.c' 'linux-source-6.1/drivers/net/xen-netback/*' \
  || fail "extracting the drivers from linux-source-6.1"

for p in "$HERE"/patches/*.patch; do
  if ! log=$(patch -p1 -d "$SRC" --dry-run -N -F0 < "$p" 2>&1); then
    echo "$log" | awk -v P="$(basename "$p")" '
      /^(patching|checking) file /{f=$3}
      /FAILED|malformed|can.t find file|Reversed/{print "xen-netif-ts build FAILED: " P ": " (f ? f ": " : "") $0}' >&2
    fail "$(basename "$p") no longer applies to linux-source-6.1 $SV (see the lines above)"
  fi
  patch -p1 -d "$SRC" -N -F0 -s < "$p"
done

NB=$SRC/kbuild/xen-netback; NF=$SRC/kbuild/xen-netfront
mkdir -p "$NB" "$NF"
cp "$SRC"/drivers/net/xen-netback/*.[ch] "$NB/"
cp "$SRC/drivers/net/xen-netfront.c" "$NF/"
cp "$REPO/include/vibra_netif_ts.h" "$NB/"
cp "$REPO/include/vibra_netif_ts.h" "$NF/"
# The in-tree Makefile uses obj-$(CONFIG_XEN_NETDEV_BACKEND); out of tree it is obj-m.
printf 'obj-m := xen-netback.o\nxen-netback-y := netback.o xenbus.o interface.o hash.o rx.o\n' > "$NB/Makefile"
echo 'obj-m := xen-netfront.o' > "$NF/Makefile"
for d in "$NB" "$NF"; do
  log=$(make -C "$HDR" M="$d" -j2 W=0 modules 2>&1) || { echo "$log" >&2; fail "kbuild of $(basename "$d")"; }
  # Any compiler warning is a failure: the patches must build clean.
  if echo "$log" | grep -q 'warning:'; then echo "$log" >&2; fail "compiler warnings in $(basename "$d")"; fi
done
strip --strip-debug -o "$OUT/xen-netback.ko" "$NB/xen-netback.ko"
strip --strip-debug -o "$OUT/xen-netfront.ko" "$NF/xen-netfront.ko"
for m in xen-netback xen-netfront; do
  vm=$(modinfo -F vermagic "$OUT/$m.ko")
  case "$vm" in "$ABI "*) ;; *) fail "$m.ko has vermagic '$vm', not $ABI";; esac
done
echo "xen-netif-ts: built $OUT/xen-netback.ko and $OUT/xen-netfront.ko"
