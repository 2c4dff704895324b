//! End to end: a long-lived TCP stream through NAT keeps flowing while the other dests of its
//! service are added, edited and removed and the service itself is edited: every byte
//! arrives, no reset on either side, and new connections follow the changing dest set.

// Helpers outside #[test] fns unwrap too: in an integration test a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use xvs_tests::{Lab, TempDir, Xvsd, can_run, wait_for};

const VIP: &str = "198.18.1.100:7000";
/// 1000 chunks of 4 KiB, 5 ms apart: a stream of about 5 s.
const BYTES: usize = 1000 * 4096;

#[test]
fn a_stream_survives_dest_churn_around_it() {
    if !can_run("a_stream_survives_dest_churn_around_it") {
        return;
    }
    let lab = Lab::two_segments(4, 1).unwrap();
    let dir = TempDir::new("churn").unwrap();
    let _srv = lab.start_tcp_id(&dir, 7000).unwrap();
    let xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    let rip = |i: usize| format!("{}:7000", lab.server_ips[i].0);
    xvsd.adm_ok(&["-A", "-t", VIP, "-s", "rr"]).unwrap();
    xvsd.adm_ok(&["-a", "-t", VIP, "-r", &rip(0), "-m"])
        .unwrap();

    // The stream, necessarily on r0, the only dest.
    let log = dir.join("stream.log");
    let bytes = BYTES.to_string();
    let t0 = Instant::now();
    let mut stream = lab
        .spawn_client_py(
            &dir,
            &["198.18.1.100", "7000", "stream", &bytes, "0.005"],
            &log,
        )
        .unwrap();
    let r0_log = dir.join("tcpid0.log");
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(&r0_log)
            .unwrap_or_default()
            .contains("conn ")),
        "stream did not reach r0\n{}",
        xvsd.log()
    );

    // Churn around it, checking new connections along the way.
    let ask = |n: &str| -> Vec<String> {
        lab.client_py(&dir, &["198.18.1.100", "7000", "ask", n])
            .unwrap_or_else(|e| panic!("{e}\n{}", xvsd.log()))
    };
    xvsd.adm_ok(&["-a", "-t", VIP, "-r", &rip(1), "-m"])
        .unwrap();
    xvsd.adm_ok(&["-a", "-t", VIP, "-r", &rip(2), "-m", "-w", "3"])
        .unwrap();
    let ids = ask("6");
    assert!(
        ids.iter().any(|i| i == "r1") && ids.iter().any(|i| i == "r2"),
        "{ids:?}"
    );
    xvsd.adm_ok(&["-e", "-t", VIP, "-r", &rip(1), "-m", "-w", "5"])
        .unwrap();
    xvsd.adm_ok(&["-E", "-t", VIP, "-s", "wrr"]).unwrap();
    xvsd.adm_ok(&["-d", "-t", VIP, "-r", &rip(2)]).unwrap();
    xvsd.adm_ok(&["-a", "-t", VIP, "-r", &rip(3), "-m", "-w", "2"])
        .unwrap();
    let ids = ask("8");
    assert!(ids.iter().all(|i| i != "r2"), "r2 was removed: {ids:?}");
    assert!(ids.iter().any(|i| i == "r3"), "{ids:?}");
    xvsd.adm_ok(&["-d", "-t", VIP, "-r", &rip(1)]).unwrap();
    xvsd.adm_ok(&["-e", "-t", VIP, "-r", &rip(3), "-m", "-w", "0"])
        .unwrap();
    let ids = ask("3");
    assert!(
        ids.iter().all(|i| i == "r0"),
        "only r0 left with weight: {ids:?}"
    );
    // The stream is still there, established, while the churn ran.
    let conns = xvsd.adm_ok(&["-Lnc"]).unwrap();
    let stream_open = conns
        .lines()
        .any(|l| l.contains("ESTABLISHED") && l.contains(&rip(0)));
    let churn_time = t0.elapsed();
    let still_streaming = stream.alive();

    let code = stream.wait_exit(Duration::from_secs(60));
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "stream client: {out}\n{}", xvsd.log());
    assert!(out.contains(&format!("got {BYTES}")), "{out}");
    let r0 = std::fs::read_to_string(&r0_log).unwrap();
    assert!(r0.contains(&format!("streamed {BYTES}")), "{r0}");
    for i in 0..4 {
        let l = std::fs::read_to_string(dir.join(&format!("tcpid{i}.log"))).unwrap();
        assert!(!l.contains("error"), "server r{i}: {l}");
    }
    // The churn really happened during the stream.
    assert!(
        still_streaming && stream_open,
        "the stream ended before the churn did ({churn_time:?}): {conns}"
    );
}
