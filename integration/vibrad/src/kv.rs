//! The key-value store under the directory: revisions, compare-and-swap, leases and watches.
//! Two implementations with one contract: [`MemKv`] (embedded, one host, no etcd) and
//! [`EtcdKv`] (etcd's v3 JSON API). The directory layer (`directory.rs`) is written once on top.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use parking_lot::{Condvar, Mutex};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// One stored value and the revision of its last change (etcd's `mod_revision`).
///
/// ```
/// let e = vibrad::kv::Entry { value: "x".into(), mod_revision: 3 };
/// assert_eq!(e.mod_revision, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The value (UTF-8: the directory stores JSON).
    pub value: String,
    /// The store revision of the last write to this key; 0 means "absent" in a compare.
    pub mod_revision: i64,
}

/// A store with revisions, single-key compare-and-swap, leases and prefix watches.
pub trait Kv: Send + Sync {
    /// The key's entry, if present.
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// kv.put("/a", "1", None).unwrap();
    /// assert_eq!(kv.get("/a").unwrap().unwrap().value, "1");
    /// ```
    fn get(&self, key: &str) -> Result<Option<Entry>>;
    /// Every key under `prefix`, in key order, and the store revision of the read.
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// kv.put("/p/a", "1", None).unwrap();
    /// kv.put("/q", "2", None).unwrap();
    /// let (keys, rev) = kv.get_prefix("/p/").unwrap();
    /// assert_eq!((keys.len(), rev), (1, 2));
    /// ```
    fn get_prefix(&self, prefix: &str) -> Result<(Vec<(String, Entry)>, i64)>;
    /// Writes `value` unconditionally (attached to `lease` if given); returns the new revision.
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// assert_eq!(kv.put("/a", "1", None).unwrap(), 1);
    /// ```
    fn put(&self, key: &str, value: &str, lease: Option<i64>) -> Result<i64>;
    /// One transaction: writes `value` only if the key's mod revision is `expected` (0: the key
    /// must be absent). Returns whether it wrote.
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// let r = kv.put("/a", "1", None).unwrap();
    /// assert!(kv.cas("/a", r, "2", None).unwrap());
    /// assert!(!kv.cas("/a", r, "3", None).unwrap());
    /// ```
    fn cas(&self, key: &str, expected: i64, value: &str, lease: Option<i64>) -> Result<bool> {
        Ok(self.cas_put(key, expected, value, lease)?.is_some())
    }
    /// [`Kv::cas`] returning the key's new mod revision when it wrote (the next compare of a
    /// key that only one writer changes needs no read).
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// let r = kv.cas_put("/a", 0, "1", None).unwrap().unwrap();
    /// assert_eq!(kv.cas_put("/a", r, "2", None).unwrap(), Some(r + 1));
    /// assert_eq!(kv.cas_put("/a", r, "3", None).unwrap(), None);
    /// ```
    fn cas_put(
        &self,
        key: &str,
        expected: i64,
        value: &str,
        lease: Option<i64>,
    ) -> Result<Option<i64>>;
    /// Deletes a key (absent is fine).
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// kv.put("/a", "1", None).unwrap();
    /// kv.delete("/a").unwrap();
    /// assert!(kv.get("/a").unwrap().is_none());
    /// ```
    fn delete(&self, key: &str) -> Result<()>;
    /// Grants a lease of `ttl`; keys attached to it vanish when it is not kept alive.
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// let l = kv.grant_lease(std::time::Duration::from_secs(5)).unwrap();
    /// kv.put("/a", "1", Some(l)).unwrap();
    /// kv.revoke(l).unwrap();
    /// assert!(kv.get("/a").unwrap().is_none());
    /// ```
    fn grant_lease(&self, ttl: Duration) -> Result<i64>;
    /// Renews a lease; an expired lease is [`Error::LeaseExpired`].
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// let l = kv.grant_lease(std::time::Duration::from_secs(5)).unwrap();
    /// kv.keep_alive(l).unwrap();
    /// assert!(kv.keep_alive(l + 1).is_err());
    /// ```
    fn keep_alive(&self, lease: i64) -> Result<()>;
    /// Revokes a lease (its keys vanish at once).
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// let l = kv.grant_lease(std::time::Duration::from_secs(5)).unwrap();
    /// kv.revoke(l).unwrap();
    /// assert!(kv.keep_alive(l).is_err());
    /// ```
    fn revoke(&self, lease: i64) -> Result<()>;
    /// Blocks until a key under `prefix` changes after revision `after`, or `timeout` passes.
    /// Returns whether something changed.
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// let r = kv.put("/w/a", "1", None).unwrap();
    /// assert!(kv.wait("/w/", r - 1, std::time::Duration::ZERO).unwrap());
    /// assert!(!kv.wait("/w/", r, std::time::Duration::from_millis(10)).unwrap());
    /// ```
    fn wait(&self, prefix: &str, after: i64, timeout: Duration) -> Result<bool>;
    /// Every value `key` has held, oldest first (deletions omitted): the tests check a bound
    /// at every step of a key's history.
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// kv.put("/a", "1", None).unwrap();
    /// kv.put("/a", "2", None).unwrap();
    /// assert_eq!(kv.history("/a").unwrap(), vec!["1", "2"]);
    /// ```
    fn history(&self, key: &str) -> Result<Vec<String>>;
    /// Every key under `prefix` as it was at store revision `revision` (tests check an
    /// invariant over several keys at every revision).
    ///
    /// ```
    /// use vibrad::kv::{Kv, MemKv};
    /// let kv = MemKv::new();
    /// let r = kv.put("/p/a", "1", None).unwrap();
    /// kv.put("/p/a", "2", None).unwrap();
    /// kv.delete("/p/a").unwrap();
    /// assert_eq!(kv.get_prefix_at("/p/", r).unwrap()[0].1.value, "1");
    /// assert!(kv.get_prefix_at("/p/", r + 2).unwrap().is_empty());
    /// ```
    fn get_prefix_at(&self, prefix: &str, revision: i64) -> Result<Vec<(String, Entry)>>;
}

#[derive(Debug, Default)]
struct MemState {
    revision: i64,
    keys: BTreeMap<String, (Entry, Option<i64>)>,
    leases: HashMap<i64, (Duration, Instant)>,
    next_lease: i64,
    /// Every change: (revision, key, value; none for a deletion or an expiry).
    history: Vec<(i64, String, Option<String>)>,
}

impl MemState {
    fn expire(&mut self) {
        let now = Instant::now();
        let dead: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        if dead.is_empty() {
            return;
        }
        for id in &dead {
            self.leases.remove(id);
        }
        let gone: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, (_, lease))| lease.is_some_and(|l| dead.contains(&l)))
            .map(|(k, _)| k.clone())
            .collect();
        if !gone.is_empty() {
            self.revision += 1;
        }
        for k in gone {
            self.keys.remove(&k);
            self.history.push((self.revision, k, None));
        }
    }

    fn write(&mut self, key: &str, value: &str, lease: Option<i64>) -> Result<i64> {
        if let Some(l) = lease
            && !self.leases.contains_key(&l)
        {
            return Err(Error::LeaseExpired(l));
        }
        self.revision += 1;
        let entry = Entry {
            value: value.to_string(),
            mod_revision: self.revision,
        };
        self.keys.insert(key.to_string(), (entry, lease));
        self.history
            .push((self.revision, key.to_string(), Some(value.to_string())));
        Ok(self.revision)
    }
}

/// The embedded store: one process, no etcd. Same semantics as etcd for everything the
/// directory uses (revisions, CAS on mod revision, lease expiry, prefix waits).
///
/// ```
/// use vibrad::kv::{Kv, MemKv};
/// let kv = MemKv::new();
/// assert!(kv.cas("/a", 0, "1", None).unwrap());
/// assert!(!kv.cas("/a", 0, "2", None).unwrap()); // no longer absent
/// assert_eq!(kv.get("/a").unwrap().unwrap().value, "1");
/// ```
#[derive(Debug, Default)]
pub struct MemKv {
    state: Mutex<MemState>,
    changed: Condvar,
}

impl MemKv {
    /// An empty store.
    ///
    /// ```
    /// assert!(vibrad::kv::Kv::get(&vibrad::kv::MemKv::new(), "/x").unwrap().is_none());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl Kv for MemKv {
    fn get(&self, key: &str) -> Result<Option<Entry>> {
        let mut s = self.state.lock();
        s.expire();
        Ok(s.keys.get(key).map(|(e, _)| e.clone()))
    }

    fn get_prefix(&self, prefix: &str) -> Result<(Vec<(String, Entry)>, i64)> {
        let mut s = self.state.lock();
        s.expire();
        let out = s
            .keys
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (e, _))| (k.clone(), e.clone()))
            .collect();
        Ok((out, s.revision))
    }

    fn put(&self, key: &str, value: &str, lease: Option<i64>) -> Result<i64> {
        let mut s = self.state.lock();
        s.expire();
        let r = s.write(key, value, lease)?;
        self.changed.notify_all();
        Ok(r)
    }

    fn cas_put(
        &self,
        key: &str,
        expected: i64,
        value: &str,
        lease: Option<i64>,
    ) -> Result<Option<i64>> {
        let mut s = self.state.lock();
        s.expire();
        let current = s.keys.get(key).map_or(0, |(e, _)| e.mod_revision);
        if current != expected {
            return Ok(None);
        }
        let r = s.write(key, value, lease)?;
        self.changed.notify_all();
        Ok(Some(r))
    }

    fn delete(&self, key: &str) -> Result<()> {
        let mut s = self.state.lock();
        if s.keys.remove(key).is_some() {
            s.revision += 1;
            let r = s.revision;
            s.history.push((r, key.to_string(), None));
            self.changed.notify_all();
        }
        Ok(())
    }

    fn grant_lease(&self, ttl: Duration) -> Result<i64> {
        let mut s = self.state.lock();
        s.next_lease += 1;
        let id = s.next_lease;
        s.leases.insert(id, (ttl, Instant::now() + ttl));
        Ok(id)
    }

    fn keep_alive(&self, lease: i64) -> Result<()> {
        let mut s = self.state.lock();
        s.expire();
        match s.leases.get_mut(&lease) {
            Some((ttl, deadline)) => {
                *deadline = Instant::now() + *ttl;
                Ok(())
            }
            None => Err(Error::LeaseExpired(lease)),
        }
    }

    fn revoke(&self, lease: i64) -> Result<()> {
        let mut s = self.state.lock();
        if let Some(l) = s.leases.get_mut(&lease) {
            l.1 = Instant::now();
        }
        s.expire();
        self.changed.notify_all();
        Ok(())
    }

    fn wait(&self, prefix: &str, after: i64, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock();
        loop {
            s.expire();
            let newest = s
                .keys
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, (e, _))| e.mod_revision)
                .max()
                .unwrap_or(0);
            if newest > after {
                return Ok(true);
            }
            if self.changed.wait_until(&mut s, deadline).timed_out() {
                return Ok(false);
            }
        }
    }

    fn history(&self, key: &str) -> Result<Vec<String>> {
        let s = self.state.lock();
        Ok(s.history
            .iter()
            .filter(|(_, k, _)| k == key)
            .filter_map(|(_, _, v)| v.clone())
            .collect())
    }

    fn get_prefix_at(&self, prefix: &str, revision: i64) -> Result<Vec<(String, Entry)>> {
        let s = self.state.lock();
        let mut at: BTreeMap<String, Entry> = BTreeMap::new();
        for (rev, k, v) in s.history.iter().take_while(|(r, _, _)| *r <= revision) {
            if !k.starts_with(prefix) {
                continue;
            }
            match v {
                Some(value) => {
                    at.insert(
                        k.clone(),
                        Entry {
                            value: value.clone(),
                            mod_revision: *rev,
                        },
                    );
                }
                None => {
                    at.remove(k);
                }
            }
        }
        Ok(at.into_iter().collect())
    }
}

/// etcd through its v3 JSON API (the gRPC gateway every etcd 3.4+ serves on its client URL):
/// `/v3/kv/range`, `/v3/kv/put`, `/v3/kv/txn`, `/v3/kv/deleterange`, `/v3/lease/grant`,
/// `/v3/lease/keepalive`, `/v3/lease/revoke`, `/v3/watch`. Keys and values travel in base64.
/// Tries each endpoint in turn until one answers, starting from the one that answered last
/// (so a member that is down costs one failed attempt, not one per request: behind a partition
/// each attempt would wait for the whole timeout).
///
/// ```no_run
/// use vibrad::kv::{EtcdKv, Kv};
/// let kv = EtcdKv::new(vec!["http://127.0.0.1:2379".into()], std::time::Duration::from_secs(2));
/// kv.put("/vibra/example", "1", None)?;
/// # Ok::<(), vibrad::Error>(())
/// ```
#[derive(Debug)]
pub struct EtcdKv {
    endpoints: Vec<String>,
    agent: ureq::Agent,
    /// Index of the endpoint that answered last: where the next request starts.
    preferred: std::sync::atomic::AtomicUsize,
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

fn unb64(v: &Value) -> Result<String> {
    let s = v.as_str().unwrap_or("");
    let bytes = B64
        .decode(s)
        .map_err(|e| Error::Etcd(format!("bad base64 from etcd: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::Etcd(format!("non-UTF-8 value in etcd: {e}")))
}

/// etcd's JSON encodes int64 as strings; absent means 0.
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The key-values of a range answer.
fn entries(v: &Value) -> Result<Vec<(String, Entry)>> {
    let mut out = Vec::new();
    for kv in v["kvs"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        out.push((
            unb64(&kv["key"])?,
            Entry {
                value: unb64(&kv["value"])?,
                mod_revision: int(&kv["mod_revision"]),
            },
        ));
    }
    Ok(out)
}

/// The end of the range of every key starting with `prefix` (etcd's `range_end`).
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return B64.encode(&bytes);
        }
    }
    B64.encode([0u8])
}

impl EtcdKv {
    /// A client for `endpoints` (`http://host:port`); each request gives up after `timeout`.
    ///
    /// ```
    /// let kv = vibrad::kv::EtcdKv::new(vec!["http://127.0.0.1:1".into()], std::time::Duration::from_millis(50));
    /// assert!(vibrad::kv::Kv::get(&kv, "/x").is_err()); // nothing listens there
    /// ```
    #[must_use]
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        EtcdKv {
            endpoints,
            agent,
            preferred: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The endpoints in the order to try them: the last one that answered first, then the
    /// rest in configured order after it, with their indices.
    fn rotation(&self) -> impl Iterator<Item = (usize, &str)> {
        let n = self.endpoints.len();
        let first = self.preferred.load(std::sync::atomic::Ordering::Relaxed);
        (0..n).map(move |k| {
            let i = (first + k) % n;
            (i, self.endpoints[i].as_str())
        })
    }

    /// Remembers that endpoint `i` answered.
    fn answered(&self, i: usize) {
        self.preferred
            .store(i, std::sync::atomic::Ordering::Relaxed);
    }

    fn call(&self, path: &str, body: &Value) -> Result<Value> {
        let mut last = String::from("no endpoints");
        for (i, ep) in self.rotation() {
            let url = format!("{}{path}", ep.trim_end_matches('/'));
            match self.agent.post(&url).send_json(body) {
                Ok(resp) => {
                    self.answered(i);
                    let status = resp.status();
                    let text = resp
                        .into_body()
                        .read_to_string()
                        .map_err(|e| Error::Etcd(format!("{url}: {e}")))?;
                    if !status.is_success() {
                        if text.contains("lease not found") {
                            return Err(Error::LeaseExpired(int(&body["ID"])));
                        }
                        return Err(Error::Etcd(format!("{url}: HTTP {status}: {text}")));
                    }
                    let v: Value = serde_json::from_str(&text)
                        .map_err(|e| Error::Etcd(format!("{url}: bad JSON {e}: {text}")))?;
                    if let Some(err) = v.get("error") {
                        return Err(Error::Etcd(format!("{url}: {err}")));
                    }
                    return Ok(v);
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(Error::Etcd(last))
    }

    fn put_op(key: &str, value: &str, lease: Option<i64>) -> Value {
        let mut put = json!({ "key": b64(key), "value": b64(value) });
        if let Some(l) = lease {
            put["lease"] = json!(l.to_string());
        }
        put
    }
}

impl Kv for EtcdKv {
    fn get(&self, key: &str) -> Result<Option<Entry>> {
        let v = self.call("/v3/kv/range", &json!({ "key": b64(key) }))?;
        match v["kvs"].as_array().and_then(|a| a.first()) {
            None => Ok(None),
            Some(kv) => Ok(Some(Entry {
                value: unb64(&kv["value"])?,
                mod_revision: int(&kv["mod_revision"]),
            })),
        }
    }

    fn get_prefix(&self, prefix: &str) -> Result<(Vec<(String, Entry)>, i64)> {
        let v = self.call(
            "/v3/kv/range",
            &json!({ "key": b64(prefix), "range_end": prefix_end(prefix) }),
        )?;
        Ok((entries(&v)?, int(&v["header"]["revision"])))
    }

    fn put(&self, key: &str, value: &str, lease: Option<i64>) -> Result<i64> {
        let v = self.call("/v3/kv/put", &Self::put_op(key, value, lease))?;
        Ok(int(&v["header"]["revision"]))
    }

    fn cas_put(
        &self,
        key: &str,
        expected: i64,
        value: &str,
        lease: Option<i64>,
    ) -> Result<Option<i64>> {
        let body = json!({
            "compare": [{
                "key": b64(key),
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": expected.to_string(),
            }],
            "success": [{ "request_put": Self::put_op(key, value, lease) }],
        });
        let v = self.call("/v3/kv/txn", &body)?;
        // The one put of a successful transaction has the transaction's revision.
        Ok(v["succeeded"]
            .as_bool()
            .unwrap_or(false)
            .then(|| int(&v["header"]["revision"])))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.call("/v3/kv/deleterange", &json!({ "key": b64(key) }))?;
        Ok(())
    }

    fn grant_lease(&self, ttl: Duration) -> Result<i64> {
        let v = self.call(
            "/v3/lease/grant",
            &json!({ "TTL": ttl.as_secs().max(1).to_string() }),
        )?;
        Ok(int(&v["ID"]))
    }

    fn keep_alive(&self, lease: i64) -> Result<()> {
        let v = self.call("/v3/lease/keepalive", &json!({ "ID": lease.to_string() }))?;
        // An expired lease answers with TTL 0 (or no TTL at all).
        if int(&v["result"]["TTL"]) <= 0 {
            return Err(Error::LeaseExpired(lease));
        }
        Ok(())
    }

    fn revoke(&self, lease: i64) -> Result<()> {
        match self.call("/v3/lease/revoke", &json!({ "ID": lease.to_string() })) {
            Ok(_) | Err(Error::LeaseExpired(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn wait(&self, prefix: &str, after: i64, timeout: Duration) -> Result<bool> {
        let body = json!({ "create_request": {
            "key": b64(prefix),
            "range_end": prefix_end(prefix),
            "start_revision": (after + 1).to_string(),
        }});
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no endpoints");
        for (i, ep) in self.rotation() {
            let url = format!("{}/v3/watch", ep.trim_end_matches('/'));
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let req = self
                .agent
                .post(&url)
                .config()
                .timeout_global(Some(left))
                .build();
            let resp = match req.send_json(&body) {
                Ok(r) => {
                    self.answered(i);
                    r
                }
                Err(ureq::Error::Timeout(_)) => return Ok(false),
                Err(e) => {
                    last = format!("{url}: {e}");
                    continue;
                }
            };
            let reader = std::io::BufReader::new(resp.into_body().into_reader());
            for line in reader.lines() {
                let Ok(line) = line else {
                    // The global timeout ends the stream: nothing changed in time.
                    return Ok(false);
                };
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v["result"]["events"]
                    .as_array()
                    .is_some_and(|e| !e.is_empty())
                {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        Err(Error::Etcd(last))
    }

    fn get_prefix_at(&self, prefix: &str, revision: i64) -> Result<Vec<(String, Entry)>> {
        let v = self.call(
            "/v3/kv/range",
            &json!({ "key": b64(prefix), "range_end": prefix_end(prefix),
                     "revision": revision.to_string() }),
        )?;
        entries(&v)
    }

    fn history(&self, key: &str) -> Result<Vec<String>> {
        let (_, now) = self.get_prefix(key)?;
        let mut out = Vec::new();
        let mut last_mod = 0;
        for rev in 1..=now {
            let v = self.call(
                "/v3/kv/range",
                &json!({ "key": b64(key), "revision": rev.to_string() }),
            )?;
            if let Some(kv) = v["kvs"].as_array().and_then(|a| a.first()) {
                let m = int(&kv["mod_revision"]);
                if m != last_mod {
                    last_mod = m;
                    out.push(unb64(&kv["value"])?);
                }
            }
        }
        Ok(out)
    }
}

/// Runs one directory operation and returns its result with its duration (the latency metric).
pub(crate) fn timed<T>(f: impl FnOnce() -> Result<T>) -> (Result<T>, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}
