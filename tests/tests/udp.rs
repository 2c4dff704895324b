//! End to end: UDP services. NAT: a flow's datagrams stick to one real server and the answers
//! come back through xvsd, with UDP entries in `-Lnc`. One-packet scheduling (`-o`): every
//! datagram of one flow is scheduled on its own, so rr spreads them over the servers, and no
//! conn is kept. The `-o` test uses DR: as in IPVS, a one-packet conn is never entered in the
//! conn table, so a NAT reply would find nothing to translate it; with DR the servers answer
//! the client directly.

// Helpers outside #[test] fns unwrap too: in an integration test a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use xvs_tests::{Lab, TempDir, Xvsd, can_run, count_lines, row};

fn tally(ids: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for id in ids {
        *m.entry(id.clone()).or_insert(0) += 1;
    }
    m
}

#[test]
fn udp_nat_flows_stick_to_a_server_and_answers_come_back() {
    if !can_run("udp_nat_flows_stick_to_a_server_and_answers_come_back") {
        return;
    }
    let lab = Lab::two_segments(2, 1).unwrap();
    let dir = TempDir::new("udp").unwrap();
    let _udp = lab.start_udp_echo(&dir, 5353).unwrap();
    let xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    xvsd.adm_ok(&["-A", "-u", "198.18.1.100:53", "-s", "rr"])
        .unwrap();
    for (v4, _) in &lab.server_ips {
        xvsd.adm_ok(&[
            "-a",
            "-u",
            "198.18.1.100:53",
            "-r",
            &format!("{v4}:5353"),
            "-m",
        ])
        .unwrap();
    }
    // Two flows (two client sockets) of 5 datagrams each: each flow sees one server, rr
    // gives the two flows different servers.
    let mut flows = Vec::new();
    for _ in 0..2 {
        let ids = lab
            .client_py(&dir, &["198.18.1.100", "53", "udp", "5"])
            .unwrap_or_else(|e| panic!("{e}\n{}", xvsd.log()));
        let t = tally(&ids);
        assert_eq!(t.len(), 1, "one flow, one server: {t:?}");
        flows.push(t.into_keys().next().unwrap());
    }
    assert_ne!(flows[0], flows[1], "rr: {flows:?}");

    let conns = xvsd.adm_ok(&["-Lnc"]).unwrap();
    assert_eq!(count_lines(&conns, "UDP"), 2, "{conns}");
    assert!(conns.contains("198.18.1.100:53"), "{conns}");
    let stats = xvsd.adm_ok(&["-Ln", "--stats"]).unwrap();
    let s = row(&stats, "UDP  198.18.1.100:53").unwrap();
    assert_eq!(s[2], "2", "{stats}");
    assert!(s[3].parse::<u64>().unwrap() >= 10, "{stats}");
    assert!(s[4].parse::<u64>().unwrap() >= 10, "{stats}");
}

#[test]
fn udp_one_packet_scheduling_spreads_one_flow() {
    if !can_run("udp_one_packet_scheduling_spreads_one_flow") {
        return;
    }
    let lab = Lab::one_lan(2).unwrap();
    let dir = TempDir::new("udpops").unwrap();
    let vip = "198.18.1.100";
    lab.servers_hold_vip(vip).unwrap();
    let _udp = lab.start_udp_echo(&dir, 53).unwrap();
    let xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    let svc = format!("{vip}:53");
    xvsd.adm_ok(&["-A", "-u", &svc, "-s", "rr", "-o"]).unwrap();
    for (v4, _) in &lab.server_ips {
        xvsd.adm_ok(&["-a", "-u", &svc, "-r", v4, "-g"]).unwrap();
    }
    let l = xvsd.adm_ok(&["-Ln"]).unwrap();
    assert!(l.contains("ops"), "{l}");
    let ids = lab
        .client_py(&dir, &[vip, "53", "udp", "8"])
        .unwrap_or_else(|e| panic!("{e}\n{}", xvsd.log()));
    let t = tally(&ids);
    assert_eq!(t.len(), 2, "-o: one flow over both servers: {t:?}");
    let conns = xvsd.adm_ok(&["-Lnc"]).unwrap();
    assert_eq!(count_lines(&conns, "UDP"), 0, "-o keeps no conn: {conns}");

    // Without -o the same kind of flow stays on one server.
    xvsd.adm_ok(&["-E", "-u", &svc, "-s", "rr"]).unwrap();
    let ids = lab
        .client_py(&dir, &[vip, "53", "udp", "8"])
        .unwrap_or_else(|e| panic!("{e}\n{}", xvsd.log()));
    let t = tally(&ids);
    assert_eq!(t.len(), 1, "without -o: {t:?}");
    let conns = xvsd.adm_ok(&["-Lnc"]).unwrap();
    assert_eq!(count_lines(&conns, "UDP"), 1, "{conns}");
}
