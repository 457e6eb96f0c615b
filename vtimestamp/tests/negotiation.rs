//! The feature-rx-timestamp handshake: no record before both ends agree.

use std::collections::HashMap;
use vtimestamp::{
    BackendNegotiation, FEATURE_RX_TIMESTAMP, FEATURE_RX_TIMESTAMP_HIRES, FrontendNegotiation,
    FrontendState, HiResDecoder, HiResEncoder, HiResEvent, TimestampRecord, TsError,
};

/// A toy xenstore: one map per directory.
#[derive(Default)]
struct Store {
    frontend: HashMap<&'static str, &'static str>,
    backend: HashMap<&'static str, &'static str>,
}

#[test]
fn records_flow_only_after_both_ends_wrote_one() {
    let mut store = Store::default();
    let (mut fe, mut be) = (FrontendNegotiation::new(), BackendNegotiation::new());
    // The backend's watch fires before the frontend asked: nothing to do, nothing to send.
    assert_eq!(
        be.on_frontend_feature(store.frontend.get(FEATURE_RX_TIMESTAMP).copied()),
        Ok(vec![])
    );
    assert!(be.may_send().is_err());
    assert!(fe.accept_record().is_err());

    let w = fe.request();
    store.frontend.insert(w.key, w.value);
    assert!(
        be.may_send().is_err(),
        "backend may not send before it acknowledged"
    );

    let acks = be
        .on_frontend_feature(store.frontend.get(FEATURE_RX_TIMESTAMP).copied())
        .expect("valid value");
    assert_eq!(acks.len(), 1, "one acknowledgement");
    for ack in acks {
        store.backend.insert(ack.key, ack.value);
    }
    assert!(be.may_send().is_ok());
    assert!(fe.accept_record().is_ok());
    assert_eq!(
        fe.on_backend_feature(store.backend.get(FEATURE_RX_TIMESTAMP).copied()),
        Ok(FrontendState::Agreed)
    );

    // The frontend withdraws: the backend stops.
    let [w, _] = fe.withdraw();
    store.frontend.insert(w.key, w.value);
    let off = be.on_frontend_feature(Some(w.value)).expect("valid");
    assert_eq!(off.len(), 1);
    assert_eq!(off[0].value, "0");
    assert!(be.may_send().is_err());
    assert!(fe.accept_record().is_err());
}

#[test]
fn malformed_values_are_errors_and_change_nothing() {
    let mut be = BackendNegotiation::new();
    be.on_frontend_feature(Some("1")).expect("valid");
    assert!(be.on_frontend_feature(Some("true")).is_err());
    assert!(be.may_send().is_ok());
    let mut fe = FrontendNegotiation::new();
    fe.request();
    assert!(fe.on_backend_feature(Some("2")).is_err());
    assert_eq!(fe.state(), FrontendState::Requested);
}

#[test]
fn a_plain_mode_frontend_never_gets_high_resolution_records() {
    let mut store = Store::default();
    let (mut fe, mut be) = (FrontendNegotiation::new(), BackendNegotiation::new());
    // A frontend that knows plain records only.
    let w = fe.request();
    store.frontend.insert(w.key, w.value);
    for w in be
        .on_frontend_feature(store.frontend.get(FEATURE_RX_TIMESTAMP).copied())
        .expect("valid")
    {
        store.backend.insert(w.key, w.value);
    }
    assert_eq!(
        be.on_frontend_hires(store.frontend.get(FEATURE_RX_TIMESTAMP_HIRES).copied()),
        Ok(None)
    );
    assert!(be.may_send().is_ok());
    assert!(matches!(be.hires(), Err(TsError::NotNegotiated(_))));
    assert!(!store.backend.contains_key(FEATURE_RX_TIMESTAMP_HIRES));
    assert!(fe.accept_hires_record().is_err());
    // A stale backend "1" does not switch a plain-mode frontend to high resolution.
    assert_eq!(fe.on_backend_hires(Some("1")), Ok(FrontendState::Off));
    // A hires key alone (without feature-rx-timestamp) means nothing.
    let mut lone = BackendNegotiation::new();
    assert_eq!(lone.on_frontend_hires(Some("1")), Ok(None));
    assert!(lone.hires().is_err());
}

#[test]
fn high_resolution_mode_flows_after_both_keys_and_stops_on_withdrawal() {
    let mut store = Store::default();
    let (mut fe, mut be) = (FrontendNegotiation::new(), BackendNegotiation::new());
    for w in fe.request_hires() {
        store.frontend.insert(w.key, w.value);
    }
    // The watch on the hires key fires first: remembered, not acknowledged yet.
    assert_eq!(
        be.on_frontend_hires(store.frontend.get(FEATURE_RX_TIMESTAMP_HIRES).copied()),
        Ok(None)
    );
    assert!(be.hires().is_err());
    let writes = be
        .on_frontend_feature(store.frontend.get(FEATURE_RX_TIMESTAMP).copied())
        .expect("valid");
    assert_eq!(
        writes.iter().map(|w| (w.key, w.value)).collect::<Vec<_>>(),
        [
            (FEATURE_RX_TIMESTAMP, "1"),
            (FEATURE_RX_TIMESTAMP_HIRES, "1")
        ]
    );
    for w in writes {
        store.backend.insert(w.key, w.value);
    }
    assert_eq!(
        fe.on_backend_feature(store.backend.get(FEATURE_RX_TIMESTAMP).copied()),
        Ok(FrontendState::Agreed)
    );
    assert_eq!(
        fe.on_backend_hires(store.backend.get(FEATURE_RX_TIMESTAMP_HIRES).copied()),
        Ok(FrontendState::Agreed)
    );
    fe.accept_hires_record().expect("agreed");

    let (mut enc, mut dec) = (HiResEncoder::new(), HiResDecoder::new());
    let t = 1_790_000_000_123_456_789;
    let recs = enc.encode(be.hires().expect("agreed"), t, false);
    // A plain decoder refuses the records rather than misreading them.
    for rec in recs.as_slice() {
        assert!(matches!(
            TimestampRecord::decode(rec),
            Err(TsError::ReservedFlags { .. })
        ));
    }
    let times: Vec<u64> = recs
        .as_slice()
        .iter()
        .filter_map(|r| match dec.decode(r).expect("valid record") {
            HiResEvent::Time { unix_nanos } => Some(unix_nanos),
            HiResEvent::Base { .. } => None,
        })
        .collect();
    assert_eq!(times, [t]);

    // The frontend disconnects: both keys go to 0, the backend withdraws both.
    for w in fe.withdraw() {
        store.frontend.insert(w.key, w.value);
    }
    let off = be
        .on_frontend_feature(store.frontend.get(FEATURE_RX_TIMESTAMP).copied())
        .expect("valid");
    assert_eq!(
        off.iter().map(|w| (w.key, w.value)).collect::<Vec<_>>(),
        [
            (FEATURE_RX_TIMESTAMP, "0"),
            (FEATURE_RX_TIMESTAMP_HIRES, "0")
        ]
    );
    assert!(be.hires().is_err());
    assert!(fe.accept_hires_record().is_err());

    // Reconnect in plain mode only: the stale hires request was cleared, so no hires.
    let w = fe.request();
    store.frontend.insert(w.key, w.value);
    be.on_frontend_feature(Some("1")).expect("valid");
    be.on_frontend_hires(store.frontend.get(FEATURE_RX_TIMESTAMP_HIRES).copied())
        .expect("valid");
    assert!(be.may_send().is_ok());
    assert!(be.hires().is_err());
}

#[test]
fn a_new_agreement_starts_with_a_new_base() {
    let mut be = BackendNegotiation::new();
    be.on_frontend_feature(Some("1")).expect("valid");
    be.on_frontend_hires(Some("1")).expect("valid");
    let mut enc = HiResEncoder::new();
    assert_eq!(
        enc.encode(be.hires().expect("agreed"), 10, false)
            .as_slice()
            .len(),
        2
    );
    assert_eq!(
        enc.encode(be.hires().expect("agreed"), 11, false)
            .as_slice()
            .len(),
        1
    );
    // The frontend reconnects (its decoder is new): the encoder sends a base again.
    be.reset();
    be.on_frontend_feature(Some("1")).expect("valid");
    be.on_frontend_hires(Some("1")).expect("valid");
    assert_eq!(
        enc.encode(be.hires().expect("agreed"), 12, false)
            .as_slice()
            .len(),
        2
    );
    // A malformed hires value is an error and changes nothing.
    assert!(be.on_frontend_hires(Some("yes")).is_err());
    assert!(be.hires().is_ok());
}
