//! Compiles the C half of the pick benchmark (`c/pick_loop.c`, a C caller of
//! `vibra_dispatcher_pick` written against `include/vibra.h`) with the optimisation level of the
//! build, warnings as errors, and links it into this crate (never into libvibra).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=c/pick_loop.c");
    println!("cargo:rerun-if-changed=../../include/vibra.h");
    cc::Build::new()
        .file("c/pick_loop.c")
        .include("../../include")
        .std("c99")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("vibra_pick_loop");
}
