//! `include/vibra.h` is generated, never edited: this test regenerates it with the pinned
//! cbindgen and `ffi/cbindgen.toml` and fails when the committed file differs.
//!
//! After changing the exported API, regenerate and commit the header:
//! `VIBRA_BLESS_HEADER=1 cargo test -p vibra-ffi --test header`.

use std::path::Path;

#[test]
fn header_matches_a_fresh_generation() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = crate_dir.join("../include/vibra.h");
    if std::env::var_os("VIBRA_BLESS_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write include/vibra.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    if committed != fresh {
        let committed = String::from_utf8_lossy(&committed);
        let fresh = String::from_utf8_lossy(&fresh);
        let first = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()));
        panic!(
            "include/vibra.h is stale (first difference at line {}): regenerate it with \
             `VIBRA_BLESS_HEADER=1 cargo test -p vibra-ffi --test header` and commit it",
            first + 1
        );
    }
}
