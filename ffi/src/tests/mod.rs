//! Rust-side tests of every exported function, calling them exactly as C would: NULL pointers,
//! zero lengths, too-small buffers, invalid enumerations as plain integers, and panics forced
//! inside the library (through `boundary::with_forced_panics`).

mod allocation;
mod dispatch;
mod share;
mod support;
mod timestamp;
mod versions_and_errors;
