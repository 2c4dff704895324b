//! Least privilege end to end: `xvsd --user nobody` opens its AF_XDP sockets and control socket
//! as root, then every thread runs as nobody with no capability, and the data path and the
//! control socket keep working: NAT requests are served, xvsadm configures it, SIGTERM stops
//! it cleanly. The next (root) start on the same interfaces works too (a program the
//! unprivileged exit could not detach is reclaimed). A bad `--user` is refused.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use xvs_tests::{Lab, TempDir, Xvsd, can_run, run, wait_for};

fn answers(xvsd: &mut Xvsd) -> bool {
    wait_for(Duration::from_secs(20), || {
        xvsd.adm(&["-Ln"]).map(|(c, _, _)| c == 0).unwrap_or(false) || !xvsd.proc.alive()
    }) && xvsd.proc.alive()
}

fn configure_and_serve(xvsd: &Xvsd, lab: &Lab) {
    xvsd.nat_service_over(lab, 1).unwrap();
    for i in 0..3 {
        lab.curl("198.18.1.100", 80, 5)
            .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", xvsd.log()));
    }
}

/// (uid, gid, CapPrm, CapEff) of every thread of `pid`.
fn threads(pid: u32) -> Vec<(String, String, String, String)> {
    let mut v = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let Ok(s) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let field = |k: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        v.push((
            field("Uid:"),
            field("Gid:"),
            field("CapPrm:"),
            field("CapEff:"),
        ));
    }
    v
}

fn id(flag: &str, user: &str) -> String {
    let out = run("id", &[flag, user]).unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn user_drops_root_and_capabilities_and_keeps_working() {
    if !can_run("user_drops_root_and_capabilities_and_keeps_working") {
        return;
    }
    let (uid, gid) = (id("-u", "nobody"), id("-g", "nobody"));
    let lab = Lab::two_segments(1, 1).unwrap();
    let dir = TempDir::new("privs").unwrap();
    let _http = lab.start_http(&dir, 8080).unwrap();
    // The socket's directory belongs to the user, so it can remove the socket at exit.
    run("chown", &[&uid, &dir.0.display().to_string()]).unwrap();

    let mut xvsd = Xvsd::start(&lab, &dir, &["--workers", "1", "--user", "nobody"]).unwrap();
    assert!(
        answers(&mut xvsd),
        "xvsd --user did not come up\n{}",
        xvsd.log()
    );
    assert!(xvsd.log().contains("dropped privileges"), "{}", xvsd.log());
    let ts = threads(xvsd.proc.pid());
    assert!(ts.len() >= 3, "workers, control and signal threads: {ts:?}");
    for (u, g, prm, eff) in &ts {
        assert_eq!(u, &format!("{uid} {uid} {uid} {uid}"), "{ts:?}");
        assert_eq!(g, &format!("{gid} {gid} {gid} {gid}"), "{ts:?}");
        assert_eq!(
            prm.trim_start_matches('0'),
            "",
            "permitted caps left: {ts:?}"
        );
        assert_eq!(
            eff.trim_start_matches('0'),
            "",
            "effective caps left: {ts:?}"
        );
    }
    let meta = std::fs::metadata(&xvsd.socket).unwrap();
    assert_eq!(meta.uid().to_string(), uid);
    assert_eq!(meta.mode() & 0o777, 0o600);

    // The data path (AF_XDP rx/tx kicks, poll) and the control socket work unprivileged.
    configure_and_serve(&xvsd, &lab);
    let stats = xvsd.adm_ok(&["-Ln", "--stats"]).unwrap();
    assert!(stats.contains("198.18.1.100:80"), "{stats}");

    // A clean stop as nobody.
    assert_eq!(
        xvsd.proc.terminate(Duration::from_secs(10)),
        Some(0),
        "{}",
        xvsd.log()
    );
    assert!(!xvsd.socket.exists(), "socket left behind");
    drop(xvsd);

    // Root again on the same interfaces: whatever the unprivileged exit left is reclaimed.
    let mut again = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    assert!(answers(&mut again), "restart failed\n{}", again.log());
    eprintln!("restart log:\n{}", again.log());
    configure_and_serve(&again, &lab);
}

#[test]
fn unknown_user_is_refused() {
    if !can_run("unknown_user_is_refused") {
        return;
    }
    let lab = Lab::two_segments(1, 1).unwrap();
    let dir = TempDir::new("privs-bad").unwrap();
    let r = Xvsd::start(
        &lab,
        &dir,
        &["--workers", "1", "--user", "no-such-user-xvs"],
    );
    let log = std::fs::read_to_string(dir.join("xvsd.log")).unwrap_or_default();
    assert!(r.is_err(), "xvsd started with an unknown user");
    assert!(log.contains("no such user"), "{log}");
}
