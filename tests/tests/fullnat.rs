//! End to end: FULLNAT (`--fullnat`, local addresses with `--add-laddr`). Client and real
//! servers on different segments; xvsd rewrites both ends, so the real servers see a local
//! address (LIP) of the director as the source and answer it, not the client, and xvsd
//! answers ARP/ND for the LIP.

// Helpers outside #[test] fns unwrap too: in an integration test a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use xvs_tests::{Lab, TempDir, Xvsd, can_run, row};

/// Configure `svc` (as xvsadm takes it) with `lip` and one FULLNAT dest per `rips` entry,
/// curl it 4 times and check what the servers, their neighbour tables and xvsd saw.
fn run_fullnat(lab: &Lab, dir: &TempDir, svc: &str, vip: &str, lip: &str, rips: &[String]) {
    let xvsd = Xvsd::start(lab, dir, &["--workers", "1"]).unwrap();
    xvsd.adm_ok(&["-A", "-t", svc, "-s", "rr"]).unwrap();
    xvsd.adm_ok(&["--add-laddr", "-t", svc, "-z", lip]).unwrap();
    for r in rips {
        xvsd.adm_ok(&["-a", "-t", svc, "-r", r, "--fullnat"])
            .unwrap();
    }
    let laddrs = xvsd.adm_ok(&["--get-laddr", "-t", svc]).unwrap();
    assert!(laddrs.contains(lip), "{laddrs}");
    let mut seen = BTreeMap::new();
    for _ in 0..4 {
        let body = lab
            .curl(vip, 80, 5)
            .unwrap_or_else(|e| panic!("curl {vip}: {e}\n{}", xvsd.log()));
        *seen.entry(body).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.values().all(|&n| n == 2), "{seen:?}");

    // The HTTP servers logged the LIP as the client, never the real client.
    for i in 0..rips.len() {
        let log = std::fs::read_to_string(dir.join(&format!("http{i}.log"))).unwrap();
        let gets: Vec<&str> = log.lines().filter(|l| l.contains("GET /id")).collect();
        assert_eq!(gets.len(), 2, "server {i} log: {log}");
        for g in gets {
            let src = g.split_whitespace().next().unwrap_or("");
            assert!(
                src == lip || src == format!("::ffff:{lip}"),
                "server {i} saw {src}, expected the LIP {lip}: {log}"
            );
        }
    }
    // And the servers' kernels resolved the LIP to the director's MAC (xvsd answers for it).
    let dmac = xvs_tests::mac_of(&lab.director, "d1").unwrap();
    let neigh = lab.servers[0].run(&["ip", "neigh", "show", lip]).unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(neigh.contains(&dmac), "LIP -> {dmac} expected: {neigh}");

    // Both directions cross xvsd.
    let stats = xvsd.adm_ok(&["-Ln", "--stats"]).unwrap();
    let s = row(&stats, &format!("TCP  {svc}")).unwrap();
    assert_eq!(s[2], "4", "{stats}");
    assert!(s[3].parse::<u64>().unwrap() >= 4 * 4, "{stats}");
    assert!(s[4].parse::<u64>().unwrap() >= 4 * 3, "{stats}");
    let conns = xvsd.adm_ok(&["-Lnc"]).unwrap();
    assert_eq!(xvs_tests::count_lines(&conns, "TCP"), 4, "{conns}");
    assert!(
        conns.contains(&lab.client_ip.0) || conns.contains(&lab.client_ip.1),
        "{conns}"
    );
}

#[test]
fn fullnat_ipv4_servers_see_the_local_address() {
    if !can_run("fullnat_ipv4_servers_see_the_local_address") {
        return;
    }
    let lab = Lab::two_segments(2, 1).unwrap();
    let dir = TempDir::new("fnat").unwrap();
    let _http = lab.start_http(&dir, 8080).unwrap();
    let rips: Vec<String> = lab
        .server_ips
        .iter()
        .map(|(v4, _)| format!("{v4}:8080"))
        .collect();
    run_fullnat(
        &lab,
        &dir,
        "198.18.1.100:80",
        "198.18.1.100",
        "198.18.2.200",
        &rips,
    );
}

#[test]
fn fullnat_ipv6_servers_see_the_local_address() {
    if !can_run("fullnat_ipv6_servers_see_the_local_address") {
        return;
    }
    let lab = Lab::two_segments(2, 1).unwrap();
    let dir = TempDir::new("fnat6").unwrap();
    let _http = lab.start_http(&dir, 8080).unwrap();
    let rips: Vec<String> = lab
        .server_ips
        .iter()
        .map(|(_, v6)| format!("[{v6}]:8080"))
        .collect();
    run_fullnat(
        &lab,
        &dir,
        "[fd01::100]:80",
        "fd01::100",
        "fd02::200",
        &rips,
    );
}
