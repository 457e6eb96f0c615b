//! Receive path, side by side in one run (issue goal: `recvmmsg` with kernel timestamps at
//! least as fast as plain `recv` followed by a clock read). Each iteration queues one batch of
//! 296-byte datagrams on a loopback socket (not timed), then times receiving all of them.
//! Run: `cargo bench -p vtimestamp --bench recv`.

use std::hint::black_box;
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vtimestamp::socket::{KernelClock, RecvBatch, TimestampedSocket};

const BATCH: usize = 64;
const PAYLOAD: [u8; 296] = [0xA5; 296];

fn fill(tx: &UdpSocket, to: std::net::SocketAddr) {
    for _ in 0..BATCH {
        tx.send_to(&PAYLOAD, to).expect("loopback send");
    }
}

fn recv(c: &mut Criterion) {
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let mut g = c.benchmark_group("recv");
    g.throughput(Throughput::Elements(BATCH as u64));

    // Every socket exists before the first measurement, so the kernel's machine-wide arrival
    // stamping (switched on by the first timestamping socket) is the same for all three.
    let ts = TimestampedSocket::bind("127.0.0.1:0", KernelClock::Ns).expect("bind");
    let ts_addr = ts.socket().local_addr().expect("addr");
    let plain = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let plain_addr = plain.local_addr().expect("addr");
    g.bench_function("recv+clock_gettime", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut buf = [0u8; 2048];
            for _ in 0..iters {
                fill(&tx, plain_addr);
                let t = Instant::now();
                for _ in 0..BATCH {
                    let (n, from) = plain.recv_from(&mut buf).expect("recv");
                    black_box((n, from, SystemTime::now()));
                }
                total += t.elapsed();
            }
            total
        })
    });

    g.bench_function("recvmsg+SO_TIMESTAMPNS", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut buf = [0u8; 2048];
            for _ in 0..iters {
                fill(&tx, ts_addr);
                let t = Instant::now();
                for _ in 0..BATCH {
                    black_box(ts.recv(&mut buf).expect("recvmsg"));
                }
                total += t.elapsed();
            }
            total
        })
    });

    let mut batch = RecvBatch::new(BATCH, 2048).expect("batch");
    g.bench_function("recvmmsg+SO_TIMESTAMPNS", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                fill(&tx, ts_addr);
                let t = Instant::now();
                let mut got = 0;
                while got < BATCH {
                    got += ts.recv_batch(&mut batch).expect("recvmmsg");
                    black_box(batch.get(0));
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, recv);
criterion_main!(benches);
