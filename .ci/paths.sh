#!/usr/bin/env bash
# No absolute path of the machine that builds the repository may appear in any tracked file,
# generated and committed ones included (include/vibra.h, ffi/abi/*.abi, Cargo.lock, ...): a
# path that works here is a fallback that silently means something else, or nothing, elsewhere.
#
#   bash .ci/paths.sh [CHECKOUT]   (default: the checkout this script is in)
#
# The paths are computed at run time, never written here: the checkout's parent directory
# (where the shared data and other worktrees live) and the cargo home (`$CARGO_HOME`, else
# `~/.cargo`: the registry sources debug information points into). A match must be the whole
# path or a path below it (`<parent>/shared`, not `<parent>load`). Every offending file and line is
# listed, then the script fails.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

parent=$(cd .. && pwd)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
cargo_home=$(cd "$cargo_home" 2>/dev/null && pwd || printf '%s' "$cargo_home")

# Extended-regex escape, so a directory name with a dot or a plus matches only itself.
quote() { printf '%s' "$1" | sed 's/[][\\.*+?(){}|^$]/\\&/g'; }
# Not preceded or followed by a character that would make it part of a longer name.
name_char='[:alnum:]_.~-'

patterns=()
for path in "$parent" "$cargo_home"; do
    path=${path%/}
    if [ -z "$path" ]; then
        echo "paths.sh: the checkout sits at the root directory: nothing to search for there"
        continue
    fi
    echo "paths.sh: searching every tracked file for $path"
    patterns+=(-e "(^|[^$name_char])$(quote "$path")([^$name_char]|\$)")
done
[ "${#patterns[@]}" -gt 0 ] || exit 0

if git grep -n -E "${patterns[@]}" -- .; then
    echo "paths.sh: the tracked files above hold a path of this machine: use a path relative to" >&2
    echo "          the workspace (or to CARGO_MANIFEST_DIR), an option or a variable instead" >&2
    exit 1
fi
echo "paths.sh: no machine path in $(git ls-files | wc -l) tracked files"
