//! Crash safety end to end: `kill -9` of xvsd (after it served requests)
//! leaves libxdp's program attached to the director's interfaces and its control socket file
//! behind; a new xvsd started on the same interfaces and socket path must work at once, with
//! no manual clean-up: it detaches the stale program (the AF_XDP backend's interface lock
//! proves no live xvs owns it) and replaces the stale socket.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use xvs_tests::{Lab, TempDir, Xvsd, can_run, run, wait_for};

/// Whether an XDP program is attached to `ifname` in the director's namespace.
fn xdp_attached(lab: &Lab, ifname: &str) -> bool {
    let out = lab
        .director
        .run(&["ip", "-d", "link", "show", "dev", ifname])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("prog/xdp") || text.contains("xdp ")
}

fn serves(lab: &Lab, xvsd: &Xvsd, n: usize) {
    for i in 0..n {
        lab.curl("198.18.1.100", 80, 5)
            .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", xvsd.log()));
    }
}

#[test]
fn restart_after_kill_9_needs_no_clean_up() {
    if !can_run("restart_after_kill_9_needs_no_clean_up") {
        return;
    }
    let lab = Lab::two_segments(2, 1).unwrap();
    let dir = TempDir::new("crash").unwrap();
    let _http = lab.start_http(&dir, 8080).unwrap();

    for round in 0..3 {
        let mut xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
        // The socket file of the killed daemon may still be there: wait until this one answers.
        assert!(
            wait_for(Duration::from_secs(20), || xvsd
                .adm(&["-Ln"])
                .map(|(c, _, _)| c == 0)
                .unwrap_or(false)
                || !xvsd.proc.alive()),
            "round {round}: xvsd does not answer\n{}",
            xvsd.log()
        );
        assert!(
            xvsd.proc.alive(),
            "round {round}: xvsd died at start\n{}",
            xvsd.log()
        );
        if round > 0 {
            assert!(
                xvsd.log().contains("detached a stale XDP program"),
                "round {round}: the stale program was not reclaimed\n{}",
                xvsd.log()
            );
        }
        xvsd.nat_service_over_all(&lab).unwrap();
        serves(&lab, &xvsd, 4);
        for ifname in &lab.dir_ifs {
            assert!(xdp_attached(&lab, ifname), "no XDP program on {ifname}");
        }

        // kill -9: nothing of xvsd's own clean-up runs.
        let pid = xvsd.proc.pid().to_string();
        run("kill", &["-KILL", &pid]).unwrap();
        assert!(wait_for(Duration::from_secs(10), || !xvsd.proc.alive()));
        assert!(
            xvsd.socket.exists(),
            "the socket file should be left behind"
        );
        for ifname in &lab.dir_ifs {
            assert!(
                xdp_attached(&lab, ifname),
                "{ifname}: expected the killed daemon's program to stay attached"
            );
        }
        // With no daemon, the VIP does not answer.
        assert!(lab.curl("198.18.1.100", 80, 1).is_err());
    }

    // A clean stop after a crash leaves nothing behind.
    let mut xvsd = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    assert!(wait_for(Duration::from_secs(20), || xvsd
        .adm(&["-Ln"])
        .map(|(c, _, _)| c == 0)
        .unwrap_or(false)));
    xvsd.nat_service_over_all(&lab).unwrap();
    serves(&lab, &xvsd, 2);
    assert_eq!(xvsd.proc.terminate(Duration::from_secs(10)), Some(0));
    assert!(!xvsd.socket.exists(), "socket left after a clean stop");
    for ifname in &lab.dir_ifs {
        assert!(
            !xdp_attached(&lab, ifname),
            "{ifname}: program left after a clean stop"
        );
    }
}
