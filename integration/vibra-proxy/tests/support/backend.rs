//! Shared by the loopback test and the overhead benchmark: tiny HTTP/1.1 back ends on
//! loopback that say who served, and the URL filter for what a request line carries.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A tiny HTTP/1.1 keep-alive server answering every request with
/// `X-Served-By: <index>` and the body `<index> <request-target>`.
pub struct BackEnd {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<thread::JoinHandle<()>>,
}

#[allow(dead_code)] // kill: the test only
impl BackEnd {
    pub fn start(index: u32, addr: SocketAddr) -> BackEnd {
        let listener = TcpListener::bind(addr).expect("bind back end");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (stop2, conns2) = (Arc::clone(&stop), Arc::clone(&conns));
        let accept = thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        conns2.lock().unwrap().push(stream.try_clone().unwrap());
                        thread::spawn(move || serve(index, stream));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
            // The listener drops here: new connections are refused.
        });
        BackEnd {
            addr,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    /// Stops listening and drops every open connection, as a crashed server would.
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            t.join().unwrap();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for BackEnd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve(index: u32, stream: TcpStream) {
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
        }
        let body = format!("{index} {target}");
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Served-By: {index}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Back ends 0..n on fresh loopback ports.
pub fn start_backends(n: u32) -> Vec<BackEnd> {
    (0..n)
        .map(|i| BackEnd::start(i, "127.0.0.1:0".parse().unwrap()))
        .collect()
}

/// A request line carries it byte for byte (see the module docs).
pub fn http_safe(url: &[u8]) -> bool {
    url.first() == Some(&b'/')
        && url
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b))
}
