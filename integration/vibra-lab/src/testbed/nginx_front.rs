//! nginx as the testbed's front end: the balancers users run today (`least_conn`, `hash
//! $request_uri consistent`) and nginx with Vibra's module (`vibra_hash`, examples/nginx), so
//! they are measured on the same back ends, workload and counters as `vibra-proxy`'s policies.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{FrontEnd, TestbedError};

/// Where the Vibra nginx module (`ngx_http_upstream_vibra_module.so`, built by
/// `examples/nginx/build.sh`) is found: the `nginx-vibra` policy needs it.
///
/// ```
/// assert_eq!(vibra_lab::testbed::NGINX_MODULE_ENV, "VIBRA_NGINX_MODULE");
/// ```
pub const NGINX_MODULE_ENV: &str = "VIBRA_NGINX_MODULE";

/// The front-end policies served by nginx rather than `vibra-proxy`.
///
/// ```
/// use vibra_lab::testbed::NGINX_POLICIES;
/// assert!(NGINX_POLICIES.contains(&"nginx-least-conn"));
/// ```
pub const NGINX_POLICIES: &[&str] = &["nginx-vibra", "nginx-hash-consistent", "nginx-least-conn"];

/// The upstream block's balancing directive for an nginx policy (R = 2 and MD5 for
/// `nginx-vibra`, as `vibra-proxy`'s `/r` policies run); `None` for any other name.
fn balancer(policy: &str) -> Option<&'static str> {
    match policy {
        "nginx-vibra" => Some("vibra_hash $request_uri replication=2 hash=md5;"),
        "nginx-hash-consistent" => Some("hash $request_uri consistent;"),
        "nginx-least-conn" => Some("least_conn;"),
        _ => None,
    }
}

/// The front end's configuration: `worker_processes 2` (as `vibra-proxy --threads 2`),
/// keep-alive connections to the back ends, a refused connection retried on the next server.
fn front_conf(
    dir: &Path,
    policy: &str,
    module: Option<&Path>,
    listen: SocketAddr,
    backends: &[SocketAddr],
) -> Result<String, TestbedError> {
    let directive = balancer(policy)
        .ok_or_else(|| TestbedError::Unavailable(format!("no nginx front end for {policy}")))?;
    let d = dir.display();
    let load = module.map_or(String::new(), |m| format!("load_module {};\n", m.display()));
    let servers: String = backends
        .iter()
        .map(|b| format!("    server {b} max_fails=1 fail_timeout=1s;\n"))
        .collect();
    Ok(format!(
        "{load}worker_processes 2;\n\
         daemon off;\n\
         pid {d}/front.pid;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {d}/front-body;\n\
         \x20 proxy_temp_path {d}/front-proxy;\n\
         \x20 fastcgi_temp_path {d}/front-fastcgi;\n\
         \x20 uwsgi_temp_path {d}/front-uwsgi;\n\
         \x20 scgi_temp_path {d}/front-scgi;\n\
         \x20 keepalive_requests 1000000;\n\
         \x20 upstream backends {{\n\
         \x20   zone backends 64k;\n\
         \x20   {directive}\n\
         {servers}\
         \x20   keepalive 64;\n\
         \x20 }}\n\
         \x20 server {{\n\
         \x20   listen {listen};\n\
         \x20   location / {{\n\
         \x20     proxy_pass http://backends;\n\
         \x20     proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n\
         \x20     proxy_buffering off;\n\
         \x20     proxy_next_upstream error timeout;\n\
         \x20   }}\n\
         \x20 }}\n\
         }}\n"
    ))
}

impl FrontEnd {
    /// The Vibra nginx module for `nginx-vibra`: `$VIBRA_NGINX_MODULE`, which must name a file.
    ///
    /// ```no_run
    /// println!("{}", vibra_lab::testbed::FrontEnd::locate_nginx_module()?.display());
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn locate_nginx_module() -> Result<PathBuf, TestbedError> {
        let Some(p) = std::env::var_os(NGINX_MODULE_ENV) else {
            return Err(TestbedError::Unavailable(format!(
                "nginx-vibra needs the module: build it with examples/nginx/build.sh and set \
                 {NGINX_MODULE_ENV} to its ngx_http_upstream_vibra_module.so"
            )));
        };
        let p = PathBuf::from(p);
        if p.is_file() {
            Ok(p)
        } else {
            Err(TestbedError::Unavailable(format!(
                "{NGINX_MODULE_ENV}={} is no file",
                p.display()
            )))
        }
    }

    /// Starts nginx on 127.0.0.1 as the front end for `policy` (one of [`NGINX_POLICIES`]),
    /// its configuration, temporary files and error log in `log_dir`, and waits until it
    /// accepts connections. `nginx-vibra` loads the module of [`FrontEnd::locate_nginx_module`].
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// let fe = FrontEnd::start_nginx("nginx-least-conn", tb.backend_addrs(), tb.work_dir())?;
    /// println!("nginx on {}", fe.addr());
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn start_nginx(
        policy: &str,
        backends: Vec<SocketAddr>,
        log_dir: &Path,
    ) -> Result<FrontEnd, TestbedError> {
        let module = if policy == "nginx-vibra" {
            Some(Self::locate_nginx_module()?)
        } else {
            None
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| TestbedError::io("127.0.0.1:0", e))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf = log_dir.join(format!("front-{policy}.conf"));
        let text = front_conf(log_dir, policy, module.as_deref(), addr, &backends)?;
        std::fs::write(&conf, text).map_err(|e| TestbedError::io(&conf, e))?;
        let log = log_dir.join(format!("front-{policy}.log"));
        // Its own process group (the master leads it), so that dropping the front end kills
        // the workers too: they do not die with their master.
        let child = Command::new("nginx")
            .process_group(0)
            .arg("-q")
            .arg("-p")
            .arg(log_dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| TestbedError::Process {
                what: "nginx (front end)".into(),
                detail: e.to_string(),
            })?;
        FrontEnd::listening(
            child,
            true,
            addr,
            format!("nginx front end ({policy})"),
            &log,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_gets_its_directive_and_every_back_end() {
        let b: Vec<SocketAddr> = vec![
            "10.0.0.2:80".parse().unwrap(),
            "10.0.0.6:80".parse().unwrap(),
        ];
        let l: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let c = front_conf(Path::new("/d"), "nginx-least-conn", None, l, &b).unwrap();
        assert!(c.contains("least_conn;") && !c.contains("load_module"));
        assert!(c.contains("server 10.0.0.2:80 ") && c.contains("server 10.0.0.6:80 "));
        assert!(c.contains("listen 127.0.0.1:8080;"));
        let c = front_conf(
            Path::new("/d"),
            "nginx-vibra",
            Some(Path::new("/m.so")),
            l,
            &b,
        )
        .unwrap();
        assert!(c.starts_with("load_module /m.so;\n"));
        assert!(c.contains("vibra_hash $request_uri replication=2 hash=md5;"));
        let c = front_conf(Path::new("/d"), "nginx-hash-consistent", None, l, &b).unwrap();
        assert!(c.contains("hash $request_uri consistent;"));
        assert!(front_conf(Path::new("/d"), "url-hash", None, l, &b).is_err());
    }
}
