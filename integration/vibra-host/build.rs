//! With the `xen` feature: checks the hand-written Xen bindings against the installed Xen
//! headers (Debian libxen-dev 4.17). `xen-abi/check.c` restates every bound prototype and is
//! compiled with -Werror, so a prototype that differs from the header fails the build; running
//! it prints the header's struct sizes, offsets and constants into `$OUT_DIR/xen_abi.rs`, which
//! `src/xen/ffi.rs` compares with its own `#[repr(C)]` layouts at compile time.
//! Without the feature this script does nothing.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=xen-abi/check.c");
    if std::env::var_os("CARGO_FEATURE_XEN").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let exe = out.join("xen-abi-check");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg("xen-abi/check.c")
        .args(["-lxenctrl", "-lxenlight", "-lxenstore", "-lxentoollog"])
        .status()
        .unwrap_or_else(|e| panic!("feature `xen`: cannot run the C compiler `{cc}`: {e}"));
    assert!(
        status.success(),
        "feature `xen`: xen-abi/check.c does not compile against the installed Xen headers \
         (install Debian's libxen-dev 4.17; a prototype error means a binding in src/xen/ffi.rs is wrong)"
    );
    let output = Command::new(&exe).output().expect("run the Xen ABI probe");
    assert!(
        output.status.success(),
        "the Xen ABI probe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(out.join("xen_abi.rs"), output.stdout).expect("write xen_abi.rs");
}
