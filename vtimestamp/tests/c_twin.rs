//! The C twin `include/vibra_netif_ts.h` against the Rust codec: the header is compiled with
//! the system C compiler (`cc`, or `$CC`) into a small driver, and every answer (return code,
//! bytes, and untouched out-parameters on error) must equal the Rust one.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use proptest::prelude::*;
use vtimestamp::{
    BackendNegotiation, HiResDecoder, HiResEncoder, HiResEvent, TsError, ts_extra_decode,
};
use vtimestamp::{ts_extra_encode, ts48_pack, ts48_unpack};

fn include_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include")
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_owned())
}

fn compile(out: &str, extra: &[&str], source: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let bin = dir.join(format!("{out}-{}", std::process::id()));
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(source);
    let status = Command::new(cc())
        .args([
            "-std=c99",
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
        ])
        .args(extra)
        .arg("-I")
        .arg(include_dir())
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{}` (install gcc): {e}", cc()));
    assert!(status.success(), "C compiler failed on {}", src.display());
    bin
}

struct Twin {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    rust: RustSide,
}

/// The Rust end of the comparison: a backend negotiation (the C twin's `agreed`), the encoder
/// and the decoder.
struct RustSide {
    be: BackendNegotiation,
    enc: HiResEncoder,
    dec: HiResDecoder,
}

fn twin() -> &'static Mutex<Twin> {
    static TWIN: OnceLock<Mutex<Twin>> = OnceLock::new();
    TWIN.get_or_init(|| {
        let bin = compile("vibra-netif-ts-driver", &[], "twin_driver.c");
        let mut child = Command::new(bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the C driver");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Mutex::new(Twin {
            _child: child,
            stdin,
            stdout,
            rust: RustSide {
                be: BackendNegotiation::new(),
                enc: HiResEncoder::new(),
                dec: HiResDecoder::new(),
            },
        })
    })
}

/// The C return code that stands for each Rust error.
fn code(e: &TsError) -> i32 {
    match e {
        TsError::MicrosOutOfRange(_) => -1,
        TsError::PackedTooWide(_) => -2,
        TsError::FractionOutOfRange(_) => -3,
        TsError::WrongRecordType { .. } => -4,
        TsError::ReservedFlags { .. } => -5,
        TsError::MissingBase => -6,
        TsError::HiResOutOfRange { .. } => -7,
        TsError::NotNegotiated(_) => -9,
        other => panic!("no C twin for {other:?}"),
    }
}

fn hex(rec: &[u8; 8]) -> String {
    rec.iter().map(|b| format!(" {b:02x}")).collect()
}

/// One driver command, with the answer the Rust codec gives.
#[derive(Debug, Clone)]
enum Cmd {
    Pack(u32, u32),
    Unpack(u64),
    Encode(u32, u32, u8),
    Decode([u8; 8]),
    HiEncode(u64, bool),
    HiDecode([u8; 8]),
    /// Both keys acknowledged anew (C: `vibra_netif_ts_hires_agree`).
    Agree,
    /// Disconnect: nothing agreed, no base (C: `vibra_netif_ts_hires_init`).
    Reset,
}

impl Cmd {
    fn line(&self) -> String {
        match self {
            Cmd::Pack(s, u) => format!("P {s} {u}\n"),
            Cmd::Unpack(p) => format!("U {p}\n"),
            Cmd::Encode(s, u, f) => format!("E {s} {u} {f}\n"),
            Cmd::Decode(r) => format!("D{}\n", hex(r)),
            Cmd::HiEncode(n, m) => format!("H {n} {}\n", u8::from(*m)),
            Cmd::HiDecode(r) => format!("R{}\n", hex(r)),
            Cmd::Agree => "A\n".to_owned(),
            Cmd::Reset => "Z\n".to_owned(),
        }
    }

    /// The Rust answer, in the driver's format (sentinels where nothing may be written).
    fn rust(&self, st: &mut RustSide) -> String {
        let RustSide { be, enc, dec } = st;
        match self {
            Cmd::Pack(s, u) => match ts48_pack(*s, *u) {
                Ok(p) => format!("0 {p}"),
                Err(e) => format!("{} {}", code(&e), u64::MAX),
            },
            Cmd::Unpack(p) => match ts48_unpack(*p) {
                Ok((s, u)) => format!("0 {s} {u}"),
                Err(e) => format!("{} {} {}", code(&e), u32::MAX, u32::MAX),
            },
            Cmd::Encode(s, u, f) => match ts_extra_encode(*s, *u, *f) {
                Ok(r) => format!("0{}", hex(&r)),
                Err(e) => format!("{}{}", code(&e), hex(&[0xff; 8])),
            },
            Cmd::Decode(r) => match ts_extra_decode(r) {
                Ok((s, u, f)) => format!("0 {s} {u} {f}"),
                Err(e) => format!("{} {} {} 255", code(&e), u32::MAX, u32::MAX),
            },
            Cmd::HiEncode(n, m) => {
                let agreed = match be.hires() {
                    Ok(agreed) => agreed,
                    Err(e) => return format!("{} 0", code(&e)),
                };
                let recs = enc.encode(agreed, *n, *m);
                let mut s = format!("0 {}", recs.as_slice().len());
                for r in recs.as_slice() {
                    s += &hex(r);
                }
                s
            }
            Cmd::HiDecode(r) => match dec.decode(r) {
                Ok(HiResEvent::Base { secs }) => format!("0 0 {secs}"),
                Ok(HiResEvent::Time { unix_nanos }) => format!("0 1 {unix_nanos}"),
                Err(e) => format!("{} -1 {}", code(&e), u64::MAX),
            },
            Cmd::Agree => {
                be.reset();
                let plain = be.on_frontend_feature(Some("1"));
                let hires = be.on_frontend_hires(Some("1"));
                assert!(plain.is_ok() && hires.is_ok(), "valid values");
                "0".to_owned()
            }
            Cmd::Reset => {
                be.reset();
                enc.reset();
                *dec = HiResDecoder::new();
                "0".to_owned()
            }
        }
    }
}

/// Runs `cmds` through the C driver (in chunks small enough for the pipes) and asserts every
/// answer equals Rust's. Returns how many were compared.
fn check(cmds: &[Cmd]) -> usize {
    let mut guard = twin().lock().unwrap_or_else(|p| p.into_inner());
    let t = &mut *guard;
    let mut compared = 0;
    let mut first_mismatch = None;
    for chunk in cmds.chunks(400) {
        let input: String = chunk.iter().map(Cmd::line).collect();
        t.stdin
            .write_all(input.as_bytes())
            .expect("write to driver");
        t.stdin.flush().expect("flush");
        for cmd in chunk {
            let mut line = String::new();
            t.stdout.read_line(&mut line).expect("read from driver");
            let want = cmd.rust(&mut t.rust);
            // Read the whole chunk even after a mismatch, so the pipe stays in step.
            if line.trim_end() != want && first_mismatch.is_none() {
                first_mismatch = Some(format!("{cmd:?}: C {:?}, Rust {want:?}", line.trim_end()));
            }
            compared += 1;
        }
        if let Some(m) = &first_mismatch {
            panic!("C and Rust differ on {m}");
        }
    }
    compared
}

/// Deterministic xorshift64*: the large input set is the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const EDGE_U32: [u32; 8] = [0, 1, 15, 16, 999_999, 1_000_000, u32::MAX - 1, u32::MAX];

#[test]
fn c_twin_matches_rust_on_a_large_input_set() {
    let mut rng = Rng(0x05EE_D0F7_AB1E);
    // Start from a known state; before any agreement both sides refuse to encode.
    let mut cmds = vec![Cmd::Reset, Cmd::HiEncode(1, false), Cmd::Agree];
    for &s in &EDGE_U32 {
        for &u in &EDGE_U32 {
            cmds.push(Cmd::Pack(s, u));
            for f in [0, 1, 2, 0x80] {
                cmds.push(Cmd::Encode(s, u, f));
            }
        }
    }
    for p in [0, 62_499, 62_500, 0xFFFF, (1 << 48) - 1, 1 << 48, u64::MAX] {
        cmds.push(Cmd::Unpack(p));
    }
    for _ in 0..40_000 {
        let r = rng.next();
        let (s, u) = ((r >> 32) as u32, (r as u32) % 1_100_000);
        cmds.push(Cmd::Pack(s, u));
        cmds.push(Cmd::Encode(s, u, (rng.next() % 4) as u8));
        cmds.push(Cmd::Unpack(rng.next() >> (rng.next() % 20)));
        let mut rec = rng.next().to_le_bytes();
        // Mostly type 6 so decoding gets past the type check.
        if rec[0] % 4 != 0 {
            rec[0] = 6;
        }
        rec[1] &= 0x07;
        cmds.push(Cmd::Decode(rec));
        cmds.push(Cmd::HiDecode(rec));
        cmds.push(Cmd::HiEncode(rng.next() >> (rng.next() % 8), r & 1 == 1));
    }
    // A hi-res stream through the C encoder and decoder, across rebases.
    cmds.push(Cmd::Reset);
    cmds.push(Cmd::HiEncode(7, true));
    cmds.push(Cmd::Agree);
    let mut t = 1_790_000_000_000_000_000u64;
    for _ in 0..5_000 {
        t += rng.next() % (1 << 46);
        cmds.push(Cmd::HiEncode(t, false));
    }
    assert!(cmds.len() > 200_000);
    assert_eq!(check(&cmds), cmds.len());
}

#[test]
fn header_compiles_freestanding() {
    compile(
        "vibra-netif-ts-freestanding.o",
        &["-ffreestanding", "-c"],
        "freestanding.c",
    );
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let rec = any::<[u8; 8]>().prop_map(|mut r| {
        r[0] = if r[0] < 200 { 6 } else { r[0] };
        r
    });
    prop_oneof![
        (any::<u32>(), 0u32..1_100_000).prop_map(|(s, u)| Cmd::Pack(s, u)),
        any::<u64>().prop_map(|p| Cmd::Unpack(p >> (p % 17))),
        (any::<u32>(), 0u32..1_100_000, 0u8..8).prop_map(|(s, u, f)| Cmd::Encode(s, u, f)),
        rec.clone().prop_map(Cmd::Decode),
        rec.prop_map(Cmd::HiDecode),
        (any::<u64>(), any::<bool>()).prop_map(|(n, m)| Cmd::HiEncode(n, m)),
        Just(Cmd::Agree),
        Just(Cmd::Reset),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn c_twin_equals_rust_for_every_tested_input(cmds in prop::collection::vec(cmd(), 1..64)) {
        prop_assert_eq!(check(&cmds), cmds.len());
    }
}
