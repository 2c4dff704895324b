//! End to end: what `-Ln --stats`, `-Ln --rate` and `-Lnc` show about real traffic: packet,
//! byte and conn counters per service and per dest, rates once the estimator has seen a few
//! seconds of steady traffic, and conns in their TCP states (ESTABLISHED for an open one,
//! TIME_WAIT / CLOSE for finished ones).

// Helpers outside #[test] fns unwrap too: in an integration test a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use xvs_tests::{Lab, TempDir, Xvsd, can_run, row, wait_for};

/// The columns of a listing row from `from` on, as numbers (`u64::MAX` for anything else).
fn nums(cols: &[&str], from: usize) -> Vec<u64> {
    cols[from..]
        .iter()
        .map(|c| c.parse().unwrap_or(u64::MAX))
        .collect()
}

#[test]
fn stats_rate_and_conn_listing_follow_the_traffic() {
    if !can_run("stats_rate_and_conn_listing_follow_the_traffic") {
        return;
    }
    let lab = Lab::two_segments(2, 1).unwrap();
    let dir = TempDir::new("stats").unwrap();
    let _http = lab.start_http(&dir, 8080).unwrap();
    let _tcp = lab.start_tcp_id(&dir, 7000).unwrap();
    let xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    for (port, rport) in [("80", "8080"), ("7000", "7000")] {
        let svc = format!("198.18.1.100:{port}");
        xvsd.adm_ok(&["-A", "-t", &svc, "-s", "rr"]).unwrap();
        for (v4, _) in &lab.server_ips {
            xvsd.adm_ok(&["-a", "-t", &svc, "-r", &format!("{v4}:{rport}"), "-m"])
                .unwrap();
        }
    }

    // Nothing yet.
    let stats = xvsd.adm_ok(&["-Ln", "--stats", "--exact"]).unwrap();
    let s = row(&stats, "TCP  198.18.1.100:80").unwrap();
    assert_eq!(nums(&s, 2), vec![0; 5], "{stats}");

    // One held-open connection on :7000, and steady HTTP traffic on :80.
    let go = dir.join("go");
    let go_s = go.display().to_string();
    let hold_log = dir.join("hold.log");
    let mut hold = lab
        .spawn_client_py(&dir, &["198.18.1.100", "7000", "hold", &go_s], &hold_log)
        .unwrap();
    let _loop = lab
        .client
        .spawn(
            &[
                "sh",
                "-c",
                "while :; do curl -s -o /dev/null --max-time 2 --noproxy '*' \
                 http://198.18.1.100:80/id; sleep 0.05; done",
            ],
            None,
        )
        .unwrap();

    // Rates appear once the estimator has seen a few ticks of traffic: service and both
    // dests have non-zero CPS, InPPS, OutPPS, InBPS and OutBPS.
    let mut rate = String::new();
    let ok = wait_for(Duration::from_secs(20), || {
        rate = xvsd.adm_ok(&["-Ln", "--rate", "--exact"]).unwrap();
        let svc_ok = row(&rate, "TCP  198.18.1.100:80")
            .is_some_and(|c| nums(&c, 2).iter().all(|&n| n > 0 && n != u64::MAX));
        let dests_ok = lab.server_ips.iter().all(|(v4, _)| {
            row(&rate, &format!("  -> {v4}:8080"))
                .is_some_and(|c| nums(&c, 2).iter().take(3).all(|&n| n > 0 && n != u64::MAX))
        });
        svc_ok && dests_ok
    });
    assert!(ok, "rates never all became non-zero:\n{rate}");
    assert!(rate.contains("CPS") && rate.contains("InPPS"), "{rate}");

    // Counters: conns, packets and bytes in both directions.
    let stats = xvsd.adm_ok(&["-Ln", "--stats", "--exact"]).unwrap();
    let s = nums(&row(&stats, "TCP  198.18.1.100:80").unwrap(), 2);
    assert!(s.iter().all(|&n| n > 0 && n != u64::MAX), "{stats}");
    assert!(s[1] >= s[0] * 4 && s[3] > s[1] * 40, "{stats}");
    // The client -> VIP packets after each connection's SYN went through the worker's flow
    // cache (its counters are published every 256 loop turns).
    let mut counters = serde_json::Value::Null;
    let cached = wait_for(Duration::from_secs(10), || {
        counters = xvsd.counters().unwrap();
        counters["workers"][0]["flow_hits"]
            .as_u64()
            .is_some_and(|n| n > 0)
    });
    assert!(cached, "no flow cache hits: {counters}");
    let w = &counters["workers"][0];
    assert!(
        w["flow_hits"].as_u64() < w["rx_packets"].as_u64(),
        "hits are received frames: {counters}"
    );
    // Conns: -Lnc lists finished ones (TIME_WAIT or CLOSE) and the held one (ESTABLISHED).
    let conns = xvsd.adm_ok(&["-Lnc"]).unwrap();
    assert!(
        conns.contains("TIME_WAIT") || conns.contains("CLOSE"),
        "{conns}"
    );
    let est: Vec<&str> = conns
        .lines()
        .filter(|l| l.contains("ESTABLISHED") && l.contains("198.18.1.100:7000"))
        .collect();
    assert_eq!(est.len(), 1, "{conns}");
    assert!(est[0].contains("198.18.1.2:"), "{conns}");
    let l = xvsd.adm_ok(&["-Ln"]).unwrap();
    let active: u64 = l
        .lines()
        .skip_while(|x| !x.starts_with("TCP  198.18.1.100:7000"))
        .skip(1)
        .take_while(|x| x.trim_start().starts_with("->"))
        .map(|x| x.split_whitespace().nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(active, 1, "one ActiveConn on :7000: {l}");

    std::fs::write(&go, b"").unwrap();
    assert_eq!(hold.wait_exit(Duration::from_secs(15)), Some(0));
    // Zeroing resets the counters.
    xvsd.adm_ok(&["-Z"]).unwrap();
    let stats = xvsd.adm_ok(&["-Ln", "--stats", "--exact"]).unwrap();
    let z = nums(&row(&stats, "TCP  198.18.1.100:7000").unwrap(), 2);
    assert_eq!(z, vec![0; 5], "{stats}");
}
