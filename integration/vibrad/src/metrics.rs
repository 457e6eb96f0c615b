//! The Prometheus text endpoint: a registry of labelled gauges and counters, and a minimal
//! std `TcpListener` responder (one path, scraped every few seconds: no HTTP crate needed).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// Metric name and help text.
const HELP: &[(&str, &str, &str)] = &[
    (
        "vibrad_allocation_units",
        "gauge",
        "Granted allocation per VM and kind, in units",
    ),
    (
        "vibrad_demand_units",
        "gauge",
        "Smoothed demand estimate per VM and kind, in units (leader only)",
    ),
    (
        "vibrad_plan_changes_total",
        "counter",
        "Plan entries produced by the customer's leader",
    ),
    (
        "vibrad_apply_writes_total",
        "counter",
        "Settings written to the kernel",
    ),
    (
        "vibrad_apply_errors_total",
        "counter",
        "Host controller errors per VM",
    ),
    (
        "vibrad_directory_errors_total",
        "counter",
        "Periods whose directory work failed",
    ),
    (
        "vibrad_directory_latency_seconds",
        "gauge",
        "Duration of the last directory round trip",
    ),
    ("vibrad_periods_total", "counter", "Control periods run"),
    (
        "vibrad_vm_failures_total",
        "counter",
        "VM failures seen on this host",
    ),
    (
        "vibrad_dps_share_cpus",
        "gauge",
        "DPS share of each local VM, in CPUs",
    ),
    (
        "vibrad_dps_utilization_cpus",
        "gauge",
        "CPU used by each local VM over the last period, in CPUs",
    ),
    (
        "vibrad_dps_weight",
        "gauge",
        "CPU weight written for each local VM (vibra-host's 1..=65535 scale)",
    ),
    (
        "vibrad_dps_upstreams",
        "gauge",
        "Upstream VMs of each local VM this period (fully distributed mode)",
    ),
    (
        "vibrad_dps_bank_balance_cpus",
        "gauge",
        "Bank balance (the bank's host only), in CPUs",
    ),
    (
        "vibrad_dps_room_cpus",
        "gauge",
        "Unbooked CPUs on this host",
    ),
    (
        "vibrad_dps_open_transfers",
        "gauge",
        "Transfers this host sent that are not answered yet",
    ),
    ("vibrad_dps_periods_total", "counter", "DPS periods run"),
    (
        "vibrad_dps_datagrams_sent_total",
        "counter",
        "DPS datagrams sent",
    ),
    (
        "vibrad_dps_retransmissions_total",
        "counter",
        "Open offers sent again",
    ),
    (
        "vibrad_dps_received_total",
        "counter",
        "Accepted DPS transfer datagrams, by message kind",
    ),
    (
        "vibrad_dps_bad_messages_total",
        "counter",
        "DPS datagrams refused (nothing changed), by reason",
    ),
    (
        "vibrad_dps_hook_records_total",
        "counter",
        "Wait records read from the PMPI hook",
    ),
];

/// The registry: values by metric name and label set.
///
/// ```
/// let m = vibrad::metrics::Metrics::default();
/// m.set("vibrad_periods_total", &[], 3.0);
/// assert!(m.render().contains("vibrad_periods_total 3"));
/// ```
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<(String, String), f64>>,
}

fn labels(l: &[(&str, &str)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    /// Sets a value.
    ///
    /// ```
    /// let m = vibrad::metrics::Metrics::default();
    /// m.set("vibrad_demand_units", &[("vm", "a")], 2.5);
    /// assert_eq!(m.get("vibrad_demand_units", &[("vm", "a")]), Some(2.5));
    /// ```
    pub fn set(&self, name: &str, l: &[(&str, &str)], v: f64) {
        self.values.lock().insert((name.to_string(), labels(l)), v);
    }

    /// Adds to a counter.
    ///
    /// ```
    /// let m = vibrad::metrics::Metrics::default();
    /// m.add("vibrad_periods_total", &[], 1.0);
    /// m.add("vibrad_periods_total", &[], 1.0);
    /// assert_eq!(m.get("vibrad_periods_total", &[]), Some(2.0));
    /// ```
    pub fn add(&self, name: &str, l: &[(&str, &str)], v: f64) {
        *self
            .values
            .lock()
            .entry((name.to_string(), labels(l)))
            .or_insert(0.0) += v;
    }

    /// A value (tests).
    ///
    /// ```
    /// assert_eq!(vibrad::metrics::Metrics::default().get("x", &[]), None);
    /// ```
    #[must_use]
    pub fn get(&self, name: &str, l: &[(&str, &str)]) -> Option<f64> {
        self.values
            .lock()
            .get(&(name.to_string(), labels(l)))
            .copied()
    }

    /// The Prometheus text exposition.
    ///
    /// ```
    /// let m = vibrad::metrics::Metrics::default();
    /// m.set("vibrad_allocation_units", &[("vm", "a\"b")], 1.0);
    /// assert!(m.render().contains(r#"vibrad_allocation_units{vm="a\"b"} 1"#));
    /// ```
    #[must_use]
    pub fn render(&self) -> String {
        let values = self.values.lock();
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, l), v) in values.iter() {
                if n == name {
                    let _ = writeln!(out, "{n}{l} {v}");
                }
            }
        }
        out
    }

    /// Serves the registry on `addr` from a background thread (every path answers with the
    /// metrics). Returns the bound address (port 0 picks one).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let m = std::sync::Arc::new(vibrad::metrics::Metrics::default());
    /// m.set("vibrad_periods_total", &[], 7.0);
    /// let addr = m.serve("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let mut c = std::net::TcpStream::connect(addr).unwrap();
    /// c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    /// let mut body = String::new();
    /// c.read_to_string(&mut body).unwrap();
    /// assert!(body.starts_with("HTTP/1.1 200 OK") && body.contains("vibrad_periods_total 7"));
    /// ```
    pub fn serve(self: &Arc<Self>, addr: SocketAddr) -> crate::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).map_err(|source| crate::Error::Io {
            what: format!("metrics listen on {addr}"),
            source,
        })?;
        let bound = listener.local_addr().map_err(|source| crate::Error::Io {
            what: "metrics local address".into(),
            source,
        })?;
        let me = Arc::clone(self);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let body = me.render();
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(bound)
    }
}
