//! End to end: persistence (`-p`) keeps one client on one real server across connections;
//! weight 0 (`-e ... -w 0`) quiesces a real server: it gets no new connections while an
//! established one keeps working.

// Helpers outside #[test] fns unwrap too: in an integration test a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use xvs_tests::{Lab, TempDir, Xvsd, can_run, wait_for};

const VIP: &str = "198.18.1.100:7000";

fn setup(lab: &Lab, dir: &TempDir, sched: &[&str]) -> Xvsd {
    let xvsd = Xvsd::start(lab, dir, &["--workers", "1"]).unwrap();
    let mut a = vec!["-A", "-t", VIP];
    a.extend_from_slice(sched);
    xvsd.adm_ok(&a).unwrap();
    for (v4, _) in &lab.server_ips {
        xvsd.adm_ok(&["-a", "-t", VIP, "-r", &format!("{v4}:7000"), "-m"])
            .unwrap();
    }
    xvsd
}

#[test]
fn persistence_keeps_a_client_on_one_server() {
    if !can_run("persistence_keeps_a_client_on_one_server") {
        return;
    }
    let lab = Lab::two_segments(3, 1).unwrap();
    let dir = TempDir::new("persist").unwrap();
    let _srv = lab.start_tcp_id(&dir, 7000).unwrap();
    let xvsd = setup(&lab, &dir, &["-s", "rr", "-p", "60"]);
    let ids: BTreeSet<String> = lab
        .client_py(&dir, &["198.18.1.100", "7000", "ask", "12"])
        .unwrap_or_else(|e| panic!("{e}\n{}", xvsd.log()))
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 1, "-p: 12 connections, one server: {ids:?}");
    let l = xvsd.adm_ok(&["-Ln"]).unwrap();
    assert!(l.contains("persistent 60"), "{l}");

    // The same service without persistence spreads the same client's connections.
    xvsd.adm_ok(&["-E", "-t", VIP, "-s", "rr"]).unwrap();
    let ids: BTreeSet<String> = lab
        .client_py(&dir, &["198.18.1.100", "7000", "ask", "6"])
        .unwrap_or_else(|e| panic!("{e}\n{}", xvsd.log()))
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 3, "no -p, rr: {ids:?}");
}

#[test]
fn weight_zero_drains_without_breaking_established_connections() {
    if !can_run("weight_zero_drains_without_breaking_established_connections") {
        return;
    }
    let lab = Lab::two_segments(2, 1).unwrap();
    let dir = TempDir::new("drain").unwrap();
    let _srv = lab.start_tcp_id(&dir, 7000).unwrap();
    let xvsd = setup(&lab, &dir, &["-s", "rr"]);

    // An established connection to some server X.
    let go = dir.join("go");
    let hold_log = dir.join("hold.log");
    let go_s = go.display().to_string();
    let mut hold = lab
        .spawn_client_py(&dir, &["198.18.1.100", "7000", "hold", &go_s], &hold_log)
        .unwrap();
    let read = || std::fs::read_to_string(&hold_log).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(15), || read().contains("first")),
        "hold: {}\n{}",
        read(),
        xvsd.log()
    );
    let x = read()
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
        .unwrap();
    let xi: usize = x.trim_start_matches('r').parse().unwrap();
    let rip = format!("{}:7000", lab.server_ips[xi].0);

    // Quiesce X.
    xvsd.adm_ok(&["-e", "-t", VIP, "-r", &rip, "-m", "-w", "0"])
        .unwrap();
    let l = xvsd.adm_ok(&["-Ln"]).unwrap();
    let dest = l
        .lines()
        .find(|l| l.contains(&format!("-> {rip}")))
        .unwrap();
    let cols: Vec<&str> = dest.split_whitespace().collect();
    // -> ADDR Forward Weight ActiveConn InActConn
    assert_eq!(cols[3], "0", "{l}");
    assert_eq!(cols[4], "1", "the held connection is still active: {l}");

    // New connections all avoid X.
    let ids = lab
        .client_py(&dir, &["198.18.1.100", "7000", "ask", "6"])
        .unwrap_or_else(|e| panic!("{e}\n{}", xvsd.log()));
    assert_eq!(ids.len(), 6);
    assert!(
        ids.iter().all(|i| *i != x),
        "drained {x} got new conns: {ids:?}"
    );

    // The established connection to X still works.
    std::fs::write(&go, b"").unwrap();
    assert_eq!(
        hold.wait_exit(Duration::from_secs(15)),
        Some(0),
        "hold: {}",
        read()
    );
    assert!(read().contains(&format!("after {x}")), "{}", read());
}
