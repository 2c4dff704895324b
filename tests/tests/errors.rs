//! End to end: xvsd refuses what it cannot serve with a clear message and exit status 1: a
//! second xvsd on an interface another xvsd already serves, an interface that does not
//! exist, and missing privileges. The first daemon keeps working after the second one
//! failed.

// Helpers outside #[test] fns unwrap too: in an integration test a failed unwrap is a
// failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use xvs_tests::{Lab, TempDir, Xvsd, bin, can_run, run};

/// Run xvsd in the director namespace with `args`, killing it after `timeout`; returns
/// (exit code, stderr+stdout). A daemon still running at the timeout is a failure.
fn xvsd_exit(lab: &Lab, dir: &TempDir, args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    xvsd_exit_as(lab, dir, &[], args, timeout)
}

/// [`xvsd_exit`] with `wrap` (e.g. `setpriv ...`) in front of the xvsd command.
fn xvsd_exit_as(
    lab: &Lab,
    dir: &TempDir,
    wrap: &[&str],
    args: &[&str],
    timeout: Duration,
) -> (Option<i32>, String) {
    let xvsd = bin("xvsd").unwrap();
    let log = dir.join("second.log");
    let f = std::fs::File::create(&log).unwrap();
    let sock = dir.join("second.sock");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.director.name])
        .args(wrap)
        .arg(&xvsd)
        .arg("--socket")
        .arg(&sock)
        .args(args)
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, std::fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn a_second_xvsd_on_the_same_interface_fails_clearly() {
    if !can_run("a_second_xvsd_on_the_same_interface_fails_clearly") {
        return;
    }
    let lab = Lab::two_segments(1, 1).unwrap();
    let dir = TempDir::new("err2").unwrap();
    let _http = lab.start_http(&dir, 8080).unwrap();
    let first = Xvsd::start(&lab, &dir, &["--workers", "1"]).unwrap();
    let (code, out) = xvsd_exit(
        &lab,
        &dir,
        &["--iface", "d0", "--iface", "d1", "--workers", "1"],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "second xvsd: {out}");
    eprintln!("second xvsd said: {out}");
    let msg = out
        .lines()
        .filter(|l| l.starts_with("xvsd:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(msg.contains("d0"), "the error names the interface: {out}");
    assert!(
        msg.contains("already") || msg.contains("busy") || msg.contains("in use"),
        "the error says the interface is taken: {out}"
    );

    // The first daemon still serves.
    first
        .adm_ok(&["-A", "-t", "198.18.1.100:80", "-s", "rr"])
        .unwrap();
    first
        .adm_ok(&[
            "-a",
            "-t",
            "198.18.1.100:80",
            "-r",
            "198.18.2.10:8080",
            "-m",
        ])
        .unwrap();
    let body = lab
        .curl("198.18.1.100", 80, 5)
        .unwrap_or_else(|e| panic!("{e}\n{}", first.log()));
    assert_eq!(body, "r0");
}

#[test]
fn a_missing_interface_fails_clearly() {
    if !can_run("a_missing_interface_fails_clearly") {
        return;
    }
    let lab = Lab::two_segments(0, 1).unwrap();
    let dir = TempDir::new("errif").unwrap();
    let (code, out) = xvsd_exit(
        &lab,
        &dir,
        &["--iface", "nosuch0", "--addr", "nosuch0=198.18.1.1/24"],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("xvsd:") && out.contains("nosuch0") && out.contains("does not exist"),
        "{out}"
    );
    // Nothing left behind: no control socket.
    assert!(!dir.join("second.sock").exists());
}

#[test]
fn missing_privileges_fail_clearly() {
    if !can_run("missing_privileges_fail_clearly") {
        return;
    }
    let lab = Lab::two_segments(0, 1).unwrap();
    let dir = TempDir::new("errpriv").unwrap();
    // nobody, no capabilities; the temp dir is root's, so give the socket a writable home.
    run("chmod", &["1777", &dir.0.display().to_string()]).unwrap();
    let (code, out) = xvsd_exit_as(
        &lab,
        &dir,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ],
        &[
            "--iface",
            "d0",
            "--addr",
            "d0=198.18.1.1/24",
            "--workers",
            "1",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("xvsd:") && out.contains("d0") && out.contains("root"),
        "the error names the interface and what is missing: {out}"
    );
}
