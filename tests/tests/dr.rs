//! End to end: DR (`-g`, direct routing) on one LAN. The real servers hold the VIP on lo and
//! never answer ARP / ND for it; xvsd answers for the VIP, rewrites only the destination MAC
//! of the client's packets, and the servers answer the client directly (the replies never
//! cross xvsd, so `-Ln --stats` counts only inbound packets).

// Helpers outside #[test] fns unwrap too: in an integration test a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use xvs_tests::{Lab, TempDir, Xvsd, can_run, row};

/// Run `n` curls to `vip:80` and count the answering servers.
fn spread(lab: &Lab, xvsd: &Xvsd, vip: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let body = lab
            .curl(vip, 80, 5)
            .unwrap_or_else(|e| panic!("curl {vip}: {e}\n{}", xvsd.log()));
        *seen.entry(body).or_insert(0) += 1;
    }
    seen
}

#[test]
fn dr_ipv4_servers_answer_the_client_directly() {
    if !can_run("dr_ipv4_servers_answer_the_client_directly") {
        return;
    }
    let lab = Lab::one_lan(2).unwrap();
    let dir = TempDir::new("dr").unwrap();
    let vip = "198.18.1.100";
    lab.servers_hold_vip(vip).unwrap();
    let _http = lab.start_http(&dir, 80).unwrap();
    let xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    xvsd.adm_ok(&["-A", "-t", &format!("{vip}:80"), "-s", "rr"])
        .unwrap();
    for (v4, _) in &lab.server_ips {
        xvsd.adm_ok(&["-a", "-t", &format!("{vip}:80"), "-r", v4, "-g"])
            .unwrap();
    }
    let seen = spread(&lab, &xvsd, vip, 6);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.values().all(|&n| n == 3), "{seen:?}");

    // The client resolved the VIP to the director's MAC: xvsd answered ARP, the servers
    // (arp_ignore=1, VIP on lo) did not.
    let dmac = xvs_tests::mac_of(&lab.director, "d0").unwrap();
    let neigh = lab.client.run(&["ip", "neigh", "show", vip]).unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(neigh.contains(&dmac), "VIP -> {dmac} expected: {neigh}");

    // The HTTP servers saw the real client address (DR leaves L3 alone).
    for i in 0..2 {
        let log = std::fs::read_to_string(dir.join(&format!("http{i}.log"))).unwrap();
        assert!(log.contains(&lab.client_ip.0), "server {i} log: {log}");
    }

    // Replies bypass the director: 6 conns, inbound packets counted, no outbound ones.
    let stats = xvsd.adm_ok(&["-Ln", "--stats"]).unwrap();
    let svc = row(&stats, &format!("TCP  {vip}:80")).unwrap();
    assert_eq!(svc[2], "6", "{stats}");
    assert!(svc[3].parse::<u64>().unwrap() >= 6 * 4, "{stats}");
    assert_eq!(svc[4], "0", "no reply crosses xvsd in DR: {stats}");
    let l = xvsd.adm_ok(&["-Ln"]).unwrap();
    assert!(l.contains("-> 198.18.1.10:80"), "{l}");
    assert!(l.contains("Route"), "{l}");
}

#[test]
fn dr_ipv6_servers_hold_the_vip_on_lo_without_answering_nd() {
    if !can_run("dr_ipv6_servers_hold_the_vip_on_lo_without_answering_nd") {
        return;
    }
    let lab = Lab::one_lan(2).unwrap();
    let dir = TempDir::new("dr6").unwrap();
    let vip = "fd01::100";
    // A /128 on lo: Linux answers neighbour solicitations only for addresses of the
    // receiving interface, so the servers stay silent for the VIP without any sysctl.
    for s in &lab.servers {
        s.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            "fd01::100/128",
            "dev",
            "lo",
            "nodad",
        ])
        .unwrap();
    }
    let _http = lab.start_http(&dir, 80).unwrap();
    let xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    xvsd.adm_ok(&["-A", "-t", "[fd01::100]:80", "-s", "rr"])
        .unwrap();
    for (_, v6) in &lab.server_ips {
        xvsd.adm_ok(&[
            "-a",
            "-t",
            "[fd01::100]:80",
            "-r",
            &format!("[{v6}]:80"),
            "-g",
        ])
        .unwrap();
    }
    let seen = spread(&lab, &xvsd, vip, 4);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.values().all(|&n| n == 2), "{seen:?}");

    let dmac = xvs_tests::mac_of(&lab.director, "d0").unwrap();
    let neigh = lab.client.run(&["ip", "-6", "neigh", "show", vip]).unwrap();
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(neigh.contains(&dmac), "VIP -> {dmac} expected: {neigh}");
    let stats = xvsd.adm_ok(&["-Ln", "--stats"]).unwrap();
    let svc = row(&stats, "TCP  [fd01::100]:80").unwrap();
    assert_eq!(svc[2], "4", "{stats}");
    assert_eq!(svc[4], "0", "no reply crosses xvsd in DR: {stats}");
}
