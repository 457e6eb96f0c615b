#!/usr/bin/env bash
# Runs Debian's haproxy in the foreground with Vibra dispatching over the given back ends
# (SPEC section 11):
#
#   examples/haproxy/serve.sh --listen HOST:PORT --replication R --hash H BACKEND...
#
#   BACKEND          HOST:PORT of a back end; they are servers 0..N-1 in the order given
#   --hash H         charsum, md5, sha1 or fast (SPEC section 2)
#   --threads T      haproxy's nbthread (default 2), one Lua state per thread
#   --runtime-dir D  where the configuration and the stats socket go (default: a temporary
#                    directory, removed on exit)
#   --print-config   print the configuration and exit instead of running haproxy
#   --build-only     build what is missing (libvibra, the Lua module) and exit
#
# Health checks run every 500 ms and one failed check marks a server down (one good one brings
# it back); the converter `lua.vibra(R,H)` (vibra_route.lua) picks each request's server. SIGTERM
# (or SIGINT) stops haproxy at once and exits 0. On first use it builds libvibra
# (ffi/install.sh into <target>/haproxy/vibra) and the Lua module (build.sh into
# <target>/haproxy/lua), where <target> is $CARGO_TARGET_DIR or the workspace's target/.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "serve.sh: $*" >&2; exit 2; }

listen="" replication="" hash="" threads=2 rundir="" print=0 build_only=0
backends=()
while [ $# -gt 0 ]; do
    case "$1" in
    --listen) [ $# -ge 2 ] || die "--listen needs a value"; listen=$2; shift 2 ;;
    --replication) [ $# -ge 2 ] || die "--replication needs a value"; replication=$2; shift 2 ;;
    --hash) [ $# -ge 2 ] || die "--hash needs a value"; hash=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a value"; threads=$2; shift 2 ;;
    --runtime-dir) [ $# -ge 2 ] || die "--runtime-dir needs a value"; rundir=$2; shift 2 ;;
    --print-config) print=1; shift ;;
    --build-only) build_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option '$1' (try --help)" ;;
    *) backends+=("$1"); shift ;;
    esac
done

# --- build what is missing --------------------------------------------------------------------
cache="${CARGO_TARGET_DIR:-$root/target}/haproxy"
case "$cache" in /*) ;; *) cache="$root/$cache" ;; esac
module="$cache/lua/vibra.so"
if [ ! -e "$cache/vibra/lib/pkgconfig/vibra.pc" ]; then
    echo "serve.sh: building libvibra into $cache/vibra (first use)" >&2
    "$root/ffi/install.sh" --prefix "$cache/vibra" >&2
fi
if [ ! -e "$module" ] || [ "$here/lua_vibra.c" -nt "$module" ] \
    || [ "$cache/vibra/lib/libvibra.so" -nt "$module" ]; then
    echo "serve.sh: building the Lua module into $cache/lua" >&2
    PKG_CONFIG_PATH="$cache/vibra/lib/pkgconfig" "$here/build.sh" "$cache/lua" >/dev/null
fi
[ "$build_only" = 1 ] && exit 0

# --- check the command line -------------------------------------------------------------------
[ -n "$listen" ] || die "--listen HOST:PORT is required"
[ ${#backends[@]} -gt 0 ] || die "at least one BACKEND (HOST:PORT) is required"
case "$replication" in '' | *[!0-9]*) die "--replication must be a number from 1 to ${#backends[@]}" ;; esac
[ "$replication" -ge 1 ] && [ "$replication" -le ${#backends[@]} ] \
    || die "--replication $replication is not in 1..${#backends[@]} (the number of back ends)"
case "$hash" in charsum | md5 | sha1 | fast) ;; *) die "--hash must be charsum, md5, sha1 or fast" ;; esac
case "$threads" in '' | *[!0-9]* | 0) die "--threads must be a positive number" ;; esac
for b in "$listen" "${backends[@]}"; do
    case "$b" in *:[0-9]*) ;; *) die "'$b' is not HOST:PORT" ;; esac
done
command -v haproxy >/dev/null || die "haproxy not found: install Debian's haproxy"

own_rundir=0
if [ -z "$rundir" ]; then
    rundir="$(mktemp -d "${TMPDIR:-/tmp}/vibra-haproxy.XXXXXX")"
    own_rundir=1
fi
mkdir -p "$rundir"
rundir="$(cd "$rundir" && pwd)"
config="$rundir/haproxy.cfg"

# --- the configuration ------------------------------------------------------------------------
write_config() {
    cat <<EOF
# Written by examples/haproxy/serve.sh: Vibra dispatching over ${#backends[@]} back ends,
# replication ${replication}, hash ${hash}.
global
    nbthread ${threads}
    lua-prepend-path "$cache/lua/?.so" cpath
    lua-prepend-path "$here/?.lua" path
    lua-load-per-thread "$here/vibra_route.lua"
    stats socket "$rundir/haproxy.sock" mode 600 level admin expose-fd listeners
    log stderr format short local0 notice

defaults
    mode http
    log global
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 10s

frontend vibra_in
    bind ${listen}
    http-response set-header X-Vibra-Thread %[thread]
    default_backend vibra

backend vibra
    # HAProxy's own balancing, used only when the module returns no server (URL hashing
    # keeps some locality; leastconn would also reposition each server in its tree, under a
    # lock, as every request starts and ends, though the module picks the server)
    balance uri
    default-server check inter 500ms fastinter 500ms downinter 500ms fall 1 rise 1
EOF
    # HAProxy's view of every server, in server order. Common case: nbsrv counts every server
    # usable (none down, in maintenance or draining), and only the loads are read; with R = 1
    # not even those (the pick is the target's first server), so the backend's name is all.
    # Otherwise srv_is_up too.
    usable="%[be_name]" state="%[be_name]"
    for i in "${!backends[@]}"; do
        usable+="/s$i=%[srv_conn(s$i)]"
        state+="/s$i=%[srv_is_up(s$i)],%[srv_conn(s$i)]"
    done
    echo "    acl vibra_all_usable nbsrv eq ${#backends[@]}"
    if [ "$replication" = 1 ]; then
        echo "    http-request set-var(txn.vibra_state) be_name"
    else
        echo "    http-request set-var-fmt(txn.vibra_state) \"$usable\""
    fi
    echo "    http-request set-var-fmt(txn.vibra_state) \"$state\" unless vibra_all_usable"
    echo "    http-request set-var(txn.vibra) \"url,concat(' ',txn.vibra_state),lua.vibra(${replication},${hash})\""
    for i in "${!backends[@]}"; do
        echo "    use-server s$i if { var(txn.vibra) -m str s$i }"
    done
    for i in "${!backends[@]}"; do
        echo "    server s$i ${backends[$i]}"
    done
}

if [ "$print" = 1 ]; then
    write_config
    [ "$own_rundir" = 1 ] && rm -rf "$rundir"
    exit 0
fi
write_config >"$config"

haproxy -c -q -f "$config" || die "haproxy refused the configuration $config"

# --- run in the foreground; SIGTERM stops it --------------------------------------------------
pid=""
stopping=0
stop() {
    stopping=1
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
}
trap stop TERM INT
haproxy -db -f "$config" &
pid=$!
status=0
while :; do
    wait "$pid" && status=0 || status=$?
    # a trapped signal interrupts wait (status > 128) while haproxy still runs: wait again
    if kill -0 "$pid" 2>/dev/null; then continue; fi
    break
done
[ "$own_rundir" = 1 ] && rm -rf "$rundir"
if [ "$stopping" = 1 ]; then
    exit 0
fi
exit "$status"
