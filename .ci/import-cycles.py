#!/usr/bin/env python3
"""Fails when two modules of one workspace crate import each other, directly or in a ring.

Usage: python3 .ci/import-cycles.py [--edges] [WORKSPACE_ROOT]   (default: the parent of .ci/)
       python3 .ci/import-cycles.py --self-test
  --edges      also print every edge found, crate by crate (to see what the script sees);
  --self-test  check the script itself on small made-up crates (CI runs it first).

A module-level import cycle (a -> b -> ... -> a) means no module of the ring can be read,
tested or moved without the others: the layering is a knot. This script finds them.

What it reads (plain Python 3, no packages):
- the crates: every `members` entry of the root Cargo.toml; in each, every target root that
  exists (src/lib.rs, src/main.rs, src/bin/*.rs, tests/*.rs, benches/*.rs, examples/*.rs) is
  its own crate (own module tree);
- the module tree: `mod name;` (file `name.rs` or `name/mod.rs` beside or under the
  declaring file), `#[path = "file"] mod name;` (the file relative to the declaring file's
  directory, as rustc reads it in a crate root or mod.rs), and inline
  `mod name { ... }`; a `#[path]` attribute anywhere else stops the script with status 2;
- the edges, after comments and string literals are blanked out:
  * every `use` declaration (any visibility, any depth, groups, globs, `as` renames), whose
    path starts with `crate::`, `super::`, `self::` or a child module's name;
  * every path written in code that starts with `crate::` or `super::` (such as
    `crate::error::check_vm_count(n)`);
  * every invocation `name!(...)` of a `macro_rules!` macro defined in another module of the
    crate: an edge to the module that defines the macro (its expansion's `$crate::` paths
    are that module's own business, so `$crate::` paths are not edges themselves).
  A path is resolved to the module that really holds the item: through child modules, through
  names a module brings in with `use` (so `crate::Error`, re-exported by lib.rs from `error`,
  is an edge to `error`, not to the crate root) and through glob imports. The edge goes from
  the module whose code holds the path to that module.

What is not an edge:
- `mod child;` itself: a parent declaring a child is structure, not an import. A child that
  imports from its parent (`use super::*` in a test module) is one edge, and a cycle only when
  the parent also imports from the child;
- a re-export of a descendant's item (`pub use child::Thing;`, `pub use child::*;` in lib.rs
  or a mod.rs) that the re-exporting module's own code never names: that is the module's
  public face, not a use. Once its code names `Thing` (or a private `use` brings it in), it
  is an edge like any other;
- a module's use of itself or of its own items;
- paths to other crates (`std::`, `::name`, dependencies), and their macros (`vec!`).

Output: for each cycle, the modules in the ring and, for each edge, the file and line of one
import that makes it. Exit status 1 when any cycle exists, 0 otherwise, 2 on a usage error.
"""

import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


# ---------------------------------------------------------------------------------------------
# Reading the workspace
# ---------------------------------------------------------------------------------------------


def workspace_members(root):
    """The `members = [...]` paths of the root Cargo.toml (plain strings, no globs expected)."""
    with open(os.path.join(root, "Cargo.toml"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^members\s*=\s*\[(.*?)\]", text, re.S | re.M)
    if not m:
        return []
    body = re.sub(r"#[^\n]*", "", m.group(1))
    return re.findall(r'"([^"]+)"', body)


def target_roots(crate_dir):
    """Every file that is the root of a module tree (a Cargo target) in one package."""
    roots = []
    for name in ("src/lib.rs", "src/main.rs"):
        path = os.path.join(crate_dir, name)
        if os.path.isfile(path):
            roots.append(path)
    for folder in ("src/bin", "tests", "benches", "examples"):
        d = os.path.join(crate_dir, folder)
        if not os.path.isdir(d):
            continue
        for entry in sorted(os.listdir(d)):
            path = os.path.join(d, entry)
            if entry.endswith(".rs") and os.path.isfile(path):
                roots.append(path)
            elif os.path.isfile(os.path.join(path, "main.rs")):
                roots.append(os.path.join(path, "main.rs"))
    return roots


def strip_comments_and_strings(src):
    """The source with comments, string, byte-string, raw-string and char literals replaced
    by spaces (newlines kept, so line numbers stay right)."""
    out = []
    i, n = 0, len(src)

    def blank(text):
        return re.sub(r"[^\n]", " ", text)

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(src[i:j]))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(src[i:j]))
            i = j
        elif re.match(r'(?:b|c)?r#*"', src[i:i + 8]) and not re.match(r"\w", src[i - 1 : i] or " "):
            m = re.match(r'(?:b|c)?r(#*)"', src[i:])
            close = '"' + m.group(1)
            j = src.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            out.append(blank(src[i:j]))
            i = j
        elif c == '"' or (c in "bc" and src[i + 1 : i + 2] == '"' and not re.match(r"\w", src[i - 1 : i] or " ")):
            j = i + (1 if c == '"' else 2)
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(blank(src[i : j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime/label ('a): blank only the
            # former.
            m = re.match(r"'(?:\\(?:u\{[0-9A-Fa-f]+\}|x[0-9A-Fa-f]{2}|.)|[^\\'\n])'", src[i:])
            if m:
                out.append(blank(m.group(0)))
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Module:
    """One module: its path from the crate root, where its code is, what it declares."""

    def __init__(self, path, file, child_dir):
        self.path = path  # tuple of names, () for the crate root
        self.file = file
        self.child_dir = child_dir  # where `mod x;` inside it looks for x.rs / x/mod.rs
        self.children = {}  # name -> Module
        self.aliases = {}  # name -> (absolute path tuple, line) brought in by `use`
        self.globs = []  # absolute path tuples of `use ...::*`
        self.items = set()  # names of items defined here
        self.refs = []  # (absolute path, line, re-exported name or None) of every use and path
        self.words = set()  # every identifier of its code outside `use` declarations
        self.macros = set()  # names of the `macro_rules!` it defines
        self.invocations = []  # (macro name, line) of every `name!` in its code


def parse_crate(root_file):
    """The module tree of one crate, with every module's imports and items."""
    modules = {}
    base = os.path.dirname(root_file)
    root = Module((), root_file, base)
    modules[()] = root
    parse_file(root, modules)
    return modules


def child_file(parent, name):
    for candidate in (
        os.path.join(parent.child_dir, name + ".rs"),
        os.path.join(parent.child_dir, name, "mod.rs"),
    ):
        if os.path.isfile(candidate):
            return candidate
    return None


PATH_ATTR_RE = re.compile(r'#\[\s*path\s*=\s*"([^"]*)"\s*\]\s*$')


def parse_file(module, modules):
    with open(module.file, encoding="utf-8") as f:
        raw = f.read()
    code = strip_comments_and_strings(raw)
    # `#[path = "..."] mod name;` is read through the raw text (strings are blanked in `code`,
    # at the same positions); any other `#[path]` is not supported.
    module.path_attrs = {}
    for m in MOD_RE.finditer(code):
        attr = PATH_ATTR_RE.search(raw[max(0, m.start() - 300) : m.start()])
        if attr and m.group(2) == ";":
            module.path_attrs[m.group(1)] = attr.group(1)
    if len(re.findall(r"#\[\s*path\b", code)) != len(module.path_attrs):
        print(f"import-cycles: {module.file}: #[path] only on `mod name;` is supported", file=sys.stderr)
        sys.exit(2)
    scan(code, 0, len(code), module, modules, line_of(code))


def line_of(code):
    starts = [0] + [m.end() for m in re.finditer("\n", code)]

    def line(pos):
        lo, hi = 0, len(starts)
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo + 1

    return line


def matching_brace(code, open_pos):
    depth = 0
    for j in range(open_pos, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code)


MOD_RE = re.compile(r"\b(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*([;{])")
USE_RE = re.compile(r"\buse\s+([^;]*);")
ITEM_RE = re.compile(
    r"\b(?:fn|struct|enum|union|type|const|static|trait|macro_rules!)\s+(" + IDENT + ")"
)
MACRO_DEF_RE = re.compile(r"\bmacro_rules!\s*(" + IDENT + ")")
MACRO_CALL_RE = re.compile(r"(?<![\w$:])(" + IDENT + r")!\s*[(\[{]")
PATH_RE = re.compile(r"(?<![\w$:])(crate|super)((?:\s*::\s*" + IDENT + ")+)")


def scan(code, start, end, module, modules, line):
    """Reads module `module`'s code in code[start:end]; inline modules are cut out and read as
    their own modules."""
    pieces = []  # the parts of [start, end) outside inline modules
    pos = start
    for m in MOD_RE.finditer(code, start, end):
        if m.start() < pos:
            continue  # inside an inline module already handled
        name, kind = m.group(1), m.group(2)
        if kind == ";":
            attr = getattr(module, "path_attrs", {}).get(name)
            if attr is not None:
                f = os.path.normpath(os.path.join(os.path.dirname(module.file), attr))
                f = f if os.path.isfile(f) else None
            else:
                f = child_file(module, name)
            if f is None:
                continue  # a cfg'd-out or generated file: nothing to read
            if os.path.basename(f) == "mod.rs":
                child_dir = os.path.dirname(f)
            else:
                child_dir = os.path.join(os.path.dirname(f), name)
            child = Module(module.path + (name,), f, child_dir)
            module.children[name] = child
            modules[child.path] = child
            parse_file(child, modules)
        else:
            open_pos = m.end() - 1
            close = matching_brace(code, open_pos)
            pieces.append((pos, m.start()))
            child = Module(module.path + (name,), module.file, os.path.join(module.child_dir, name))
            module.children[name] = child
            modules[child.path] = child
            scan(code, open_pos + 1, close, child, modules, line)
            pos = close + 1
    pieces.append((pos, end))
    for a, b in pieces:
        read_body(code, a, b, module, line)


def read_body(code, a, b, module, line):
    body = code[a:b]
    for m in ITEM_RE.finditer(body):
        module.items.add(m.group(1))
    use_spans = []
    for m in USE_RE.finditer(body):
        use_spans.append((m.start(), m.end()))
        ln = line(a + m.start())
        public = re.search(r"\bpub(?:\s*\([^)]*\))?\s*$", body[max(0, m.start() - 40) : m.start()])
        for target, alias in expand_use_tree(m.group(1)):
            absolute = absolutise(target, module)
            if absolute is None:
                continue
            if alias == "*":
                module.globs.append(absolute)
            elif alias:
                module.aliases[alias] = (absolute, ln)
            module.refs.append((absolute, ln, alias if public else None))
    for m in PATH_RE.finditer(body):
        if any(s <= m.start() < e for s, e in use_spans):
            continue
        segments = (m.group(1),) + tuple(s.strip() for s in m.group(2).split("::") if s.strip())
        absolute = absolutise(segments, module)
        if absolute is not None:
            module.refs.append((absolute, line(a + m.start()), None))
    for m in MACRO_DEF_RE.finditer(body):
        module.macros.add(m.group(1))
    for m in MACRO_CALL_RE.finditer(body):
        module.invocations.append((m.group(1), line(a + m.start())))
    code = list(body)
    for s, e in use_spans:
        code[s:e] = " " * (e - s)
    module.words.update(re.findall(IDENT, "".join(code)))


def expand_use_tree(tree):
    """`a::{b, c::{d as e, *}, self}` -> [((a,b), 'b'), ((a,c,d), 'e'), ((a,c), '*'), ((a,), 'a')]."""
    tree = re.sub(r"\s+", " ", tree).strip()
    tree = re.sub(r"^(?:pub(?:\s*\([^)]*\))?\s+)", "", tree)
    results = []

    def walk(prefix, text):
        text = text.strip()
        if not text:
            return
        brace = text.find("{")
        if brace >= 0 and text.endswith("}"):
            head = [s.strip() for s in text[:brace].split("::") if s.strip()]
            inner = text[brace + 1 : -1]
            for part in split_top(inner):
                walk(prefix + head, part)
            return
        alias = None
        m = re.match(r"^(.*?)\s+as\s+(" + IDENT + r")$", text)
        if m:
            text, alias = m.group(1), m.group(2)
        segs = [s.strip() for s in text.split("::") if s.strip() != ""]
        if text.startswith("::"):
            return  # explicitly an external crate
        full = prefix + segs
        if full and full[-1] == "self":
            full = full[:-1]
            if alias is None and full:
                alias = full[-1]
        elif full and full[-1] == "*":
            full, alias = full[:-1], "*"
        elif alias is None and full:
            alias = full[-1]
        if alias == "_":
            alias = None
        if full:
            results.append((tuple(full), alias))

    for part in split_top(tree):
        walk([], part)
    return results


def split_top(text):
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def absolutise(segments, module):
    """A path as seen from `module` made absolute (from the crate root), or None when it
    names another crate. A first segment that is neither a keyword nor a child module is an
    external crate or a name in scope (a prelude type, a generic): no edge."""
    segs = list(segments)
    here = list(module.path)
    first = segs[0]
    if first == "crate":
        return tuple(["crate"] + segs[1:])
    if first in ("super", "self"):
        while segs and segs[0] in ("super", "self"):
            if segs.pop(0) == "super":
                if not here:
                    return None
                here.pop()
        return tuple(["crate"] + here + segs)
    if first in module.children:
        return tuple(["crate"] + here + segs)
    if first in module.aliases:
        target, _ = module.aliases[first]
        return tuple(list(target) + segs[1:])
    return None


# ---------------------------------------------------------------------------------------------
# Resolving paths to modules and finding cycles
# ---------------------------------------------------------------------------------------------


def resolve(modules, absolute, seen=None):
    """The module that holds what `absolute` (('crate', ...)) names."""
    seen = set() if seen is None else seen
    if absolute in seen:
        return None
    seen.add(absolute)
    current = modules[()]
    segs = list(absolute[1:])
    while segs:
        name = segs[0]
        if name in current.children:
            current = current.children[name]
            segs.pop(0)
            continue
        if name in current.aliases:
            target, _ = current.aliases[name]
            return resolve(modules, tuple(target) + tuple(segs[1:]), seen)
        if name not in current.items:
            for glob in current.globs:
                resolved = resolve(modules, tuple(glob) + tuple(segs), seen)
                if resolved is not None and (
                    name in resolved.items or name in resolved.children or name in resolved.aliases
                ):
                    return resolved
        return current
    return current


def is_below(path, ancestor):
    return len(path) > len(ancestor) and path[: len(ancestor)] == ancestor


def edges_of(modules):
    """{(from, to): line} between distinct modules."""
    edges = {}
    defined_in = {}
    for module in modules.values():
        for macro in module.macros:
            defined_in.setdefault(macro, module)
    for module in modules.values():
        for macro, ln in module.invocations:
            target = defined_in.get(macro)
            if target is not None and target is not module:
                edges.setdefault((module.path, target.path), (module.file, ln))
        for absolute, ln, reexported in module.refs:
            target = resolve(modules, absolute)
            if target is None or target is module:
                continue
            if reexported and is_below(target.path, module.path) and reexported not in module.words:
                continue  # a facade: the parent shows a descendant's item, never uses it
            key = (module.path, target.path)
            if key not in edges:
                edges[key] = (module.file, ln)
    return edges


def strongly_connected(nodes, edges):
    """Tarjan's algorithm: the components with more than one module."""
    succ = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                result.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return result


def ring_in(component, edges):
    """One shortest cycle through the component's first module, for the report."""
    members = set(component)
    start = component[0]
    parent, frontier = {}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for a, b in edges:
                if a != v or b not in members:
                    continue
                if b == start:
                    ring = [v]
                    while ring[-1] != start:
                        ring.append(parent[ring[-1]])
                    return list(reversed(ring)) + [start]
                if b not in parent:
                    parent[b] = v
                    nxt.append(b)
        frontier = nxt
    return component + [start]


def name(path):
    return "crate" if not path else "::".join(path)


def check(root):
    """Every crate target of the workspace at `root`: yields (root file, modules, edges, the
    cycles as (ring, component))."""
    for member in workspace_members(root):
        for root_file in target_roots(os.path.join(root, member)):
            modules = parse_crate(root_file)
            edges = edges_of(modules)
            cycles = [(ring_in(c, edges), c) for c in strongly_connected(list(modules), edges)]
            yield root_file, modules, edges, cycles


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        return self_test()
    show_edges = "--edges" in args
    args = [a for a in args if a != "--edges"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print("\n".join(__doc__.strip().splitlines()[2:7]), file=sys.stderr)
        return 2
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    root = os.path.abspath(root)
    if not os.path.isfile(os.path.join(root, "Cargo.toml")):
        print(f"import-cycles: no Cargo.toml in {root}", file=sys.stderr)
        return 2
    found, crates, module_count = 0, 0, 0
    for root_file, modules, edges, cycles in check(root):
        rel = os.path.relpath(root_file, root)
        crates += 1
        module_count += len(modules)
        if show_edges:
            print(f"{rel}: {len(modules)} modules")
            for (a, b), (file, ln) in sorted(edges.items()):
                print(f"  {name(a)} -> {name(b)}   ({os.path.relpath(file, root)}:{ln})")
        for ring, component in cycles:
            found += 1
            print(f"import cycle in {rel}: {' -> '.join(name(p) for p in ring)}")
            if len(component) > len(ring) - 1:
                knot = ", ".join(name(p) for p in component)
                print(f"  (the knot holds {len(component)} modules: {knot})")
            for a, b in zip(ring, ring[1:]):
                file, ln = edges[(a, b)]
                print(f"  {name(a)} -> {name(b)}: {os.path.relpath(file, root)}:{ln}")
    if found:
        print(
            f"import-cycles: {found} cycle(s); break each by moving what both sides need into a "
            "module of its own"
        )
        return 1
    print(
        f"import-cycles: no module-level import cycle in {crates} crate targets "
        f"({module_count} modules)"
    )
    return 0


# ---------------------------------------------------------------------------------------------
# Self-test: made-up crates with a known answer each
# ---------------------------------------------------------------------------------------------

SELF_TESTS = [
    # (what, {file: text}, the rings expected, as sets of module names)
    (
        "two modules importing each other",
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "use crate::b::B;\npub struct A;\n",
            "b.rs": "use crate::a::A;\npub struct B;\n",
        },
        [{"a", "b"}],
    ),
    (
        "a ring of three through a crate-root re-export and a path in code",
        {
            "lib.rs": "mod a;\nmod b;\nmod c;\npub use c::C;\n",
            "a.rs": "pub fn f() { crate::b::g() }\n",
            "b.rs": "use super::C;\npub fn g() {}\n",
            "c.rs": "use crate::a;\npub struct C;\nfn h() { a::f() }\n",
        },
        [{"a", "b", "c"}],
    ),
    (
        "parent re-exports its children, children use the parent's trait: a facade, no cycle",
        {
            "lib.rs": "mod sel;\npub use sel::*;\n",
            "sel/mod.rs": "mod k;\npub use k::K;\npub trait T {}\n",
            "sel/k.rs": "use super::T;\npub struct K;\nimpl T for K {}\n",
        },
        [],
    ),
    (
        "a parent whose code uses its child's item while the child uses the parent's: a cycle",
        {
            "lib.rs": "mod sel;\n",
            "sel/mod.rs": "mod k;\npub use k::K;\npub trait T {}\nfn make() -> K { K }\n",
            "sel/k.rs": "use super::T;\npub struct K;\nimpl T for K {}\n",
        },
        [{"sel", "sel::k"}],
    ),
    (
        "an inline test module using its parent: no cycle; comments and strings are not code",
        {
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "// use crate::b::B;\nconst S: &str = \"crate::b::x\";\n"
            "#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::b::B;\n}\n",
            "b.rs": "use crate::a::S;\npub struct B;\n",
        },
        [],
    ),
    (
        "a macro used by the module it depends on: a cycle through the macro",
        {
            "lib.rs": "#[macro_use]\nmod m;\nmod codes;\n",
            "m.rs": "use crate::codes::OK;\nmacro_rules! guard { () => { $crate::m::g() }; }\n"
            "pub fn g() -> u32 { OK }\n",
            "codes.rs": "pub const OK: u32 = 0;\npub fn text() { guard!(); }\n",
        },
        [{"m", "codes"}],
    ),
]


def self_test():
    import tempfile

    failures = 0
    for what, files, expected in SELF_TESTS:
        with tempfile.TemporaryDirectory() as root:
            with open(os.path.join(root, "Cargo.toml"), "w", encoding="utf-8") as f:
                f.write('[workspace]\nmembers = ["k"]\n')
            for rel, text in files.items():
                path = os.path.join(root, "k", "src", rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            found = [
                {name(p) for p in component}
                for _, _, _, cycles in check(root)
                for _, component in cycles
            ]
        ok = sorted(map(sorted, found)) == sorted(map(sorted, expected))
        failures += not ok
        print(f"self-test {'ok  ' if ok else 'FAIL'} {what}" + ("" if ok else f": found {found}"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
