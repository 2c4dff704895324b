//! `-R` of 10,000 services x 10 dests, and `-Ln` of them.
//!
//! - `server_restore_10k_x10`: the control server alone (parse + validate + one
//!   `Director::apply`), fresh state each iteration.
//! - `socket_restore_10k_x10`: the same text through the control socket in chunks, as
//!   `xvsadm -R` sends it (the text starts with `-C`, so each iteration replaces everything).
//! - `socket_list_10k_x10`: `-Ln` of the result: fetch all frames, sort, format.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "test code: a failure should panic loudly"
)]

use std::os::unix::net::UnixListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use xvs_control::cli::{format, group, names::Names, parse::fmt};
use xvs_control::proto::{Client, RequestBody, ResponseBody};
use xvs_control::server::{Hooks, Server};
use xvs_dataplane::director::Director;

fn rules(services: u32, dests: u32) -> String {
    let mut s = String::with_capacity((services * (dests + 1) * 56) as usize);
    s.push_str("-C\n");
    for i in 0..services {
        let vip = format!("10.{}.{}.1:80", i / 256, i % 256);
        s.push_str(&format!("-A -t {vip} -s wlc\n"));
        for j in 0..dests {
            s.push_str(&format!(
                "-a -t {vip} -r 172.16.{}.{}:8080 -m -w {}\n",
                i % 200,
                j + 1,
                j % 5 + 1
            ));
        }
    }
    s
}

fn send_restore(c: &mut Client, text: &str) {
    const CHUNK: usize = 900 * 1024;
    let mut rest = text;
    loop {
        let mut cut = rest.len().min(CHUNK);
        if cut < rest.len() {
            cut = rest[..cut].rfind('\n').map_or(cut, |i| i + 1);
        }
        let (chunk, tail) = rest.split_at(cut);
        let r = c
            .call(RequestBody::Restore {
                prog: "ipvsadm".into(),
                chunk: chunk.into(),
                last: tail.is_empty(),
            })
            .unwrap();
        if tail.is_empty() {
            match r {
                ResponseBody::Restore(r) => assert_eq!(r.exit_code, 0, "{:?}", r.messages),
                other => panic!("{other:?}"),
            }
            return;
        }
        rest = tail;
    }
}

fn bench(c: &mut Criterion) {
    let text = rules(10_000, 10);
    let mut g = c.benchmark_group("restore");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("server_restore_10k_x10", |b| {
        b.iter_batched(
            || Server::new(Arc::new(Director::new(1)), Hooks::default(), 12),
            |mut s| {
                let r = s.restore("ipvsadm", &text, false);
                assert_eq!(r.applied, 110_001);
                s
            },
            BatchSize::PerIteration,
        );
    });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xvs.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = Arc::new(Mutex::new(Server::new(
        Arc::new(Director::new(1)),
        Hooks::default(),
        12,
    )));
    {
        let server = Arc::clone(&server);
        std::thread::spawn(move || {
            let stop = AtomicBool::new(false);
            Server::serve(&server, &listener, &stop);
        });
    }
    g.bench_function("socket_restore_10k_x10", |b| {
        b.iter(|| {
            let mut cl = Client::connect(&path).unwrap();
            send_restore(&mut cl, &text);
        });
    });
    let names = Names::default();
    send_restore(&mut Client::connect(&path).unwrap(), &text);
    {
        let d = Arc::new(Director::new(1));
        let mut sv = Server::new(Arc::clone(&d), Hooks::default(), 12);
        sv.restore("x", &text, false);
        let t = std::time::Instant::now();
        let mut n = 0u64;
        for s in &sv.config().services {
            for de in &s.dests {
                n += u64::from(
                    d.dest_counters(&s.key, de.addr, de.port)
                        .unwrap()
                        .activeconns,
                );
            }
        }
        eprintln!("110k dest_counters: {:?} ({n})", t.elapsed());
        let t = std::time::Instant::now();
        for _ in 0..110_000 {
            n += d.snapshot().generation;
        }
        eprintln!("110k snapshot(): {:?} ({n})", t.elapsed());
    }
    {
        // One timed pass per phase, printed for the report.
        let t = std::time::Instant::now();
        let mut pending = String::new();
        let frames = server.lock().unwrap().handle(
            RequestBody::List {
                service: None,
                stats: false,
            },
            &mut pending,
        );
        let t1 = t.elapsed();
        let bytes: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| serde_json::to_vec(&xvs_control::proto::Response::new(f.clone())).unwrap())
            .collect();
        let t2 = t.elapsed();
        let mut items = Vec::new();
        for b in &bytes {
            if let ResponseBody::List { items: mut i, .. } =
                xvs_control::proto::decode_response(b).unwrap().body
            {
                items.append(&mut i);
            }
        }
        let t3 = t.elapsed();
        let list = group(items);
        let out = format::list_all(&list, fmt::NUMERIC, Some("header\n"), &names);
        let t4 = t.elapsed();
        eprintln!(
            "list phases: server {t1:?}, encode {:?} ({} bytes), decode {:?}, format {:?} ({} bytes)",
            t2 - t1,
            bytes.iter().map(Vec::len).sum::<usize>(),
            t3 - t2,
            t4 - t3,
            out.len()
        );
    }
    g.bench_function("socket_list_10k_x10", |b| {
        b.iter(|| {
            let mut cl = Client::connect(&path).unwrap();
            let items = cl.list(None, false).unwrap().unwrap();
            let list = group(items);
            let out = format::list_all(&list, fmt::NUMERIC, Some("header\n"), &names);
            assert!(out.len() > 5_000_000);
            out.len()
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
