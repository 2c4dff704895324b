//! End to end: NAT (`-m`) with the client and the real servers on different subnets, the
//! servers' gateway being xvsd, over real AF_XDP sockets on veths, real kernels and real HTTP.

use std::collections::BTreeMap;

use xvs_tests::{Lab, TempDir, Xvsd, can_run};

#[test]
fn nat_round_robin_reaches_every_real_server_and_counts_it() {
    if !can_run("nat_round_robin_reaches_every_real_server_and_counts_it") {
        return;
    }
    let lab = Lab::two_segments(3, 1).unwrap();
    let dir = TempDir::new("nat").unwrap();
    let _http = lab.start_http(&dir, 8080).unwrap();
    let xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    xvsd.nat_service_over_all(&lab).unwrap();
    let mut seen = BTreeMap::new();
    for _ in 0..9 {
        let body = lab
            .curl("198.18.1.100", 80, 5)
            .unwrap_or_else(|e| panic!("curl: {e}\n{}", xvsd.log()));
        *seen.entry(body).or_insert(0) += 1;
    }
    // rr over three dests: each real server answered exactly three times.
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|&n| n == 3), "{seen:?}");
    let stats = xvsd.adm_ok(&["-Ln", "--stats"]).unwrap();
    let svc = stats
        .lines()
        .find(|l| l.starts_with("TCP  198.18.1.100:80"))
        .unwrap();
    let cols: Vec<&str> = svc.split_whitespace().collect();
    assert_eq!(cols[2], "9", "9 conns counted: {stats}");
    assert!(
        cols[3].parse::<u64>().unwrap() >= 9 * 5,
        "in packets: {stats}"
    );
    assert!(
        cols[4].parse::<u64>().unwrap() >= 9 * 4,
        "out packets: {stats}"
    );
    let conns = xvsd.adm_ok(&["-Lnc"]).unwrap();
    assert_eq!(
        conns.lines().filter(|l| l.starts_with("TCP")).count(),
        9,
        "{conns}"
    );
    assert!(
        conns.contains("TIME_WAIT") || conns.contains("CLOSE"),
        "{conns}"
    );
}

#[test]
fn nat_ipv6_serves_requests_through_the_vip() {
    if !can_run("nat_ipv6_serves_requests_through_the_vip") {
        return;
    }
    let lab = Lab::two_segments(2, 1).unwrap();
    let dir = TempDir::new("nat6").unwrap();
    let _http = lab.start_http(&dir, 8080).unwrap();
    let xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    xvsd.adm_ok(&["-A", "-t", "[fd01::100]:80", "-s", "rr"])
        .unwrap();
    for (_, v6) in &lab.server_ips {
        xvsd.adm_ok(&[
            "-a",
            "-t",
            "[fd01::100]:80",
            "-r",
            &format!("[{v6}]:8080"),
            "-m",
        ])
        .unwrap();
    }
    let mut seen = BTreeMap::new();
    for _ in 0..4 {
        let body = lab
            .curl("fd01::100", 80, 5)
            .unwrap_or_else(|e| panic!("curl: {e}\n{}", xvsd.log()));
        *seen.entry(body).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    let l = xvsd.adm_ok(&["-Ln"]).unwrap();
    assert!(l.contains("TCP  [fd01::100]:80 rr"), "{l}");
}
