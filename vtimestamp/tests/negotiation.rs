//! The feature-rx-timestamp handshake: no record before both ends agree.

use std::collections::HashMap;
use vtimestamp::{BackendNegotiation, FEATURE_RX_TIMESTAMP, FrontendNegotiation, FrontendState};

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
        Ok(None)
    );
    assert!(be.may_send().is_err());
    assert!(fe.accept_record().is_err());

    let w = fe.request();
    store.frontend.insert(w.key, w.value);
    assert!(
        be.may_send().is_err(),
        "backend may not send before it acknowledged"
    );

    let ack = be
        .on_frontend_feature(store.frontend.get(FEATURE_RX_TIMESTAMP).copied())
        .expect("valid value")
        .expect("an acknowledgement");
    store.backend.insert(ack.key, ack.value);
    assert!(be.may_send().is_ok());
    assert!(fe.accept_record().is_ok());
    assert_eq!(
        fe.on_backend_feature(store.backend.get(FEATURE_RX_TIMESTAMP).copied()),
        Ok(FrontendState::Agreed)
    );

    // The frontend withdraws: the backend stops.
    let w = fe.withdraw();
    store.frontend.insert(w.key, w.value);
    let off = be
        .on_frontend_feature(Some(w.value))
        .expect("valid")
        .expect("a write");
    assert_eq!(off.value, "0");
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
