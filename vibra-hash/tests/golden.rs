//! Golden vectors: the hash mapping is an ABI (SPEC section 2), so these values must never
//! change. The expected values were computed outside this crate, with Python's `hashlib` (MD5,
//! SHA-1), the `xxhash` package (`xxh3_64_intdigest`, seed 0) and `sum(key)` for charsum; MD5("/")
//! = 6666cd76f96956469e7be39d750cc7d9 and SHA-1("/") = 42099b4af021e53fd8fd4e056c2568d7c2e3ffa8
//! are the well-known digests, and XXH3-64("") = 2d06800538d394c2 is the specification's
//! empty-input value.

use std::num::NonZeroU32;

use vibra_hash::{Dispatcher, HashKind, dispatch_key};

struct Golden {
    key: &'static [u8],
    /// charsum, md5, sha1, fast
    h: [u64; 4],
    ns16: [u32; 4],
    ns10: [u32; 4],
    ns65536: [u32; 4],
}

const GOLDEN: &[Golden] = &[
    Golden {
        key: b"/",
        h: [
            0x2f,
            0x6666cd76f9695646,
            0x42099b4af021e53f,
            0x474292953285562e,
        ],
        ns16: [15, 6, 15, 14],
        ns10: [7, 2, 9, 2],
        ns65536: [47, 22086, 58687, 22062],
    },
    Golden {
        key: b"/index.html",
        h: [
            0x42a,
            0xd1546d731a9f30cc,
            0x14fe4559026d4c5b,
            0xaa8f18ab73b5f828,
        ],
        ns16: [10, 12, 11, 8],
        ns10: [6, 4, 5, 2],
        ns65536: [1066, 12492, 19547, 63528],
    },
    Golden {
        key: b"/english/index.html",
        h: [
            0x743,
            0x24708f022f3e512a,
            0x5014f44ff6c415d2,
            0x8c5537f013ea8e68,
        ],
        ns16: [3, 10, 2, 8],
        ns10: [9, 0, 6, 4],
        ns65536: [1859, 20778, 5586, 36456],
    },
    Golden {
        key: b"/images/home_intro.anim.gif",
        h: [
            0xa3f,
            0x174358c4550258bf,
            0x77c352f41badd061,
            0x0ec790398164de84,
        ],
        ns16: [15, 15, 1, 4],
        ns10: [3, 5, 5, 2],
        ns65536: [2623, 22719, 53345, 56964],
    },
    Golden {
        key: b"/prog",
        h: [
            0x1e7,
            0xa13ba0ca9e4e5349,
            0x53e2776cacd6beac,
            0xc8a07b048c17136f,
        ],
        ns16: [7, 9, 12, 15],
        ns10: [7, 9, 4, 5],
        ns65536: [487, 21321, 48812, 4975],
    },
    Golden {
        key: b"/stat",
        h: [
            0x1eb,
            0x7d4c79bcc51ba7a0,
            0xf0f3445417573774,
            0x0d47e27c2a3ddab5,
        ],
        ns16: [11, 0, 4, 5],
        ns10: [1, 6, 6, 1],
        ns65536: [491, 42912, 14196, 55989],
    },
    Golden {
        key: b"/caf\xc3\xa9",
        h: [
            0x2c5,
            0xfa9b2c1834eec27f,
            0xf6aebd903d4b0310,
            0xbae1f4c10858f687,
        ],
        ns16: [5, 15, 0, 7],
        ns10: [9, 9, 8, 5],
        ns65536: [709, 49791, 784, 63111],
    },
    Golden {
        key: b"/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a",
        h: [
            0x1680,
            0x186e9c3a1db0e7ee,
            0x4bc379b5ea7d0cf6,
            0x63f1ee23d20d710e,
        ],
        ns16: [0, 14, 6, 14],
        ns10: [0, 2, 4, 8],
        ns65536: [5760, 59374, 3318, 28942],
    },
];

fn n(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap()
}

#[test]
fn hash64_matches_independent_reference() {
    for g in GOLDEN {
        for (kind, want) in HashKind::ALL.into_iter().zip(g.h) {
            assert_eq!(kind.hash64(g.key), want, "{kind} of {:?}", g.key);
        }
    }
}

#[test]
fn sub_namespaces_match_golden_vectors() {
    for g in GOLDEN {
        for (i, kind) in HashKind::ALL.into_iter().enumerate() {
            assert_eq!(
                kind.sub_namespace(g.key, n(16)),
                g.ns16[i],
                "{kind} N=16 {:?}",
                g.key
            );
            assert_eq!(
                kind.sub_namespace(g.key, n(10)),
                g.ns10[i],
                "{kind} N=10 {:?}",
                g.key
            );
            assert_eq!(
                kind.sub_namespace(g.key, n(65_536)),
                g.ns65536[i],
                "{kind} N=65536"
            );
        }
    }
}

#[test]
fn xxh3_empty_input_is_the_specification_value() {
    assert_eq!(HashKind::Fast.hash64(b""), 0x2d06800538d394c2);
}

#[test]
fn dispatcher_namespace_goes_through_key_extraction() {
    for (i, kind) in HashKind::ALL.into_iter().enumerate() {
        let d = Dispatcher::new(16, 1, kind).unwrap();
        for (target, g) in [
            (
                &b"http://www.france98.com/english/index.html?lang=en"[..],
                &GOLDEN[2],
            ),
            (b"/index.html#top", &GOLDEN[1]),
            (b"", &GOLDEN[0]),
            (b"HTTPS://example.org?x", &GOLDEN[0]),
        ] {
            assert_eq!(dispatch_key(target), g.key);
            assert_eq!(d.namespace(target), g.ns16[i], "{kind} {:?}", target);
        }
    }
}

#[test]
fn charsum_collisions_documented_in_hashkind_hold() {
    // Anagrams collide for every N.
    for servers in [2, 3, 4, 7, 16, 1000] {
        assert_eq!(
            HashKind::Charsum.sub_namespace(b"/stop", n(servers)),
            HashKind::Charsum.sub_namespace(b"/post", n(servers))
        );
    }
    // "/prog" and "/stat" differ by 4: same sub-namespace on 4 servers, not on 16.
    assert_eq!(
        HashKind::Charsum.sub_namespace(b"/prog", n(4)),
        HashKind::Charsum.sub_namespace(b"/stat", n(4))
    );
    assert_ne!(
        HashKind::Charsum.sub_namespace(b"/prog", n(16)),
        HashKind::Charsum.sub_namespace(b"/stat", n(16))
    );
}

#[test]
fn hash_names_and_codes_round_trip() {
    for kind in HashKind::ALL {
        assert_eq!(kind.to_string().parse::<HashKind>().unwrap(), kind);
        assert_eq!(HashKind::try_from(kind.code()).unwrap(), kind);
    }
    assert_eq!(
        ["charsum", "md5", "sha1", "fast"].map(|s| s.parse::<HashKind>().unwrap()),
        HashKind::ALL
    );
    assert!("MD5".parse::<HashKind>().is_err());
    assert!("xxh3".parse::<HashKind>().is_err());
    assert!(HashKind::try_from(4).is_err());
}

mod key_properties {
    use proptest::prelude::*;
    use vibra_hash::dispatch_key;

    /// SPEC section 1, literally, as an independent reference.
    fn spec_key(target: &[u8]) -> Vec<u8> {
        let lower: Vec<u8> = target.iter().map(|b| b.to_ascii_lowercase()).collect();
        let mut path: &[u8] = target;
        for scheme in [&b"http://"[..], b"https://"] {
            if lower.starts_with(scheme) {
                let rest = &target[scheme.len()..];
                path = match rest.iter().position(|b| b"/?#".contains(b)) {
                    Some(i) if rest[i] == b'/' => &rest[i..],
                    _ => b"/",
                };
                break;
            }
        }
        let end = path
            .iter()
            .position(|b| b"?#".contains(b))
            .unwrap_or(path.len());
        if end == 0 {
            b"/".to_vec()
        } else {
            path[..end].to_vec()
        }
    }

    fn targets() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"http://".to_vec()),
            Just(b"HTTPS://".to_vec()),
            Just(b"/".to_vec()),
            Just(b"?".to_vec()),
            Just(b"#".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn dispatch_key_follows_spec_section_1(target in targets()) {
            let key = dispatch_key(&target);
            prop_assert_eq!(key, &spec_key(&target)[..]);
            prop_assert!(!key.is_empty());
            prop_assert!(!key.contains(&b'?') && !key.contains(&b'#'));
        }

        #[test]
        fn dispatch_key_is_idempotent_on_origin_form(target in targets()) {
            let key = dispatch_key(&target);
            if key.first() == Some(&b'/') {
                prop_assert_eq!(dispatch_key(key), key);
            }
        }
    }
}
