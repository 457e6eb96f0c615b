//! Gives the shared library its soname, `libvibra.so.<abi>`, so that programs linked against one
//! ABI version never load a library of another. The ABI number has one source, the
//! `VIBRA_ABI_VERSION` constant in `src/version.rs` (which cbindgen also copies into `vibra.h`).
//!
//! Nothing else: building libvibra needs no C compiler (the pick benchmark's C half is compiled
//! by its own package, `ffi/bench`).

use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-changed=src/version.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let source = fs::read_to_string("src/version.rs").expect("read src/version.rs");
    let abi = abi_version(&source)
        .expect("src/version.rs defines `pub const VIBRA_ABI_VERSION: u32 = <n>;`");
    // ELF platforms only: Mach-O and PE name their libraries differently.
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        os.as_str(),
        "linux"
            | "android"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "dragonfly"
            | "illumos"
            | "solaris"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvibra.so.{abi}");
    }
}

/// The number in `pub const VIBRA_ABI_VERSION: u32 = <n>;`.
fn abi_version(source: &str) -> Option<u32> {
    source.lines().find_map(|line| {
        let rest = line
            .trim()
            .strip_prefix("pub const VIBRA_ABI_VERSION: u32 =")?;
        rest.trim().strip_suffix(';')?.trim().parse().ok()
    })
}
