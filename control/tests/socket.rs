//! The control socket under abuse: garbage, oversized, unknown-version and wrong-shape requests
//! get an error reply (or a closed connection for an oversized frame), and the daemon stays up
//! with its configuration unchanged.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "test code: a failure should panic loudly"
)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xvs_control::proto::{self, ResponseBody};

struct Daemon {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Daemon {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("xvs.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_xvsd"))
        .arg("--socket")
        .arg(&sock)
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !sock.exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "xvsd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon {
        child,
        sock,
        _dir: dir,
    }
}

fn xvsadm(sock: &Path, args: &[&str]) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_xvsadm"))
        .args(args)
        .env("XVS_SOCKET", sock)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Send raw bytes on a fresh connection and read one response frame (None: closed).
fn raw(sock: &Path, bytes: &[u8]) -> Option<ResponseBody> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let body = proto::read_frame(&mut s).ok()?;
    Some(proto::decode_response(&body).unwrap().body)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn is_error(r: Option<ResponseBody>) -> bool {
    matches!(r, Some(ResponseBody::Error(e)) if e.errno.is_none())
}

#[test]
fn garbage_oversized_and_unknown_version_leave_state_unchanged() {
    let d = start();
    // Default mode 0600.
    let mode = std::fs::metadata(&d.sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        xvsadm(&d.sock, &["-A", "-t", "10.0.0.1:80", "-s", "rr"]).1,
        0
    );
    assert_eq!(
        xvsadm(
            &d.sock,
            &["-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-m"]
        )
        .1,
        0
    );
    let (before, code) = xvsadm(&d.sock, &["-Sn"]);
    assert_eq!(code, 0);
    assert!(before.contains("-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1"));

    // Garbage body in a well-formed frame.
    assert!(is_error(raw(&d.sock, &frame(b"\x00\x01\xffgarbage"))));
    // Valid JSON, unknown version, otherwise a destructive request.
    assert!(is_error(raw(
        &d.sock,
        &frame(br#"{"version":2,"body":{"Exec":"Flush"}}"#)
    )));
    // Right version, unknown request.
    assert!(is_error(raw(
        &d.sock,
        &frame(br#"{"version":1,"body":{"Exec":{"Explode":1}}}"#)
    )));
    // Right version, wrong field types.
    assert!(is_error(raw(
        &d.sock,
        &frame(br#"{"version":1,"body":{"Exec":{"DelService":{"Inet":{"proto":"x"}}}}}"#)
    )));
    // Oversized length prefix: an error and the connection closed, body never read.
    let mut big = ((proto::MAX_FRAME as u32) + 1).to_be_bytes().to_vec();
    big.extend_from_slice(&[b'x'; 1024]);
    assert!(is_error(raw(&d.sock, &big)));
    // A huge real body too.
    let huge = vec![b'{'; proto::MAX_FRAME + 10];
    let mut s = UnixStream::connect(&d.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&frame(&huge));
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(!buf.is_empty());
    // Truncated frame then hang-up.
    {
        let mut s = UnixStream::connect(&d.sock).unwrap();
        s.write_all(&[0, 0, 0, 50, b'{']).unwrap();
    }
    // A connection that sends nothing and closes.
    drop(UnixStream::connect(&d.sock).unwrap());

    // After a garbage frame the same connection still works.
    let mut s = UnixStream::connect(&d.sock).unwrap();
    s.write_all(&frame(b"nope")).unwrap();
    let r = proto::decode_response(&proto::read_frame(&mut s).unwrap()).unwrap();
    assert!(matches!(r.body, ResponseBody::Error(_)));
    s.write_all(&frame(br#"{"version":1,"body":"GetInfo"}"#))
        .unwrap();
    let r = proto::decode_response(&proto::read_frame(&mut s).unwrap()).unwrap();
    assert!(matches!(
        r.body,
        ResponseBody::Info {
            conn_tab_size: 4096,
            ..
        }
    ));

    // Alive, unchanged.
    let (after, code) = xvsadm(&d.sock, &["-Sn"]);
    assert_eq!(code, 0);
    assert_eq!(after, before);
    assert!(d.sock.exists());
}

#[test]
fn socket_group_mode_is_0660() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("x/xvs.sock");
    let gid = nix::unistd::getgid().as_raw().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xvsd"))
        .arg("--socket")
        .arg(&sock)
        .arg("--socket-group")
        .arg(&gid)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !sock.exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "xvsd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(mode, 0o660);
    assert!(!sock.exists());
}

#[test]
fn counters_show_the_defence_settings_and_the_process_figures() {
    // 1000 entries, amemthresh 2000: fewer free entries than the threshold, so the automatic
    // drop_entry is active from the start.
    let d = start_with(&[
        "--max-conns",
        "1000",
        "--drop-entry",
        "1",
        "--amemthresh",
        "2000",
        "--drop-packet",
        "3",
        "--secure-tcp",
        "2",
    ]);
    let mut c = proto::Client::connect(&d.sock).unwrap();
    let ResponseBody::Counters(k) = c.call(proto::RequestBody::GetCounters).unwrap() else {
        panic!("not a counters answer");
    };
    // Counted from outside while the asking connection is still open.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", d.child.id()))
        .unwrap()
        .count() as u64;
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let rss: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    drop(c);
    assert_eq!((k.conns, k.max_conns), (0, 1000));
    assert_eq!(k.defence.drop_entry, "auto");
    assert_eq!(k.defence.drop_packet, "always");
    assert_eq!(k.defence.secure_tcp, "auto");
    assert_eq!(k.defence.amemthresh, 2000);
    assert!(k.defence.active);
    assert_eq!(k.fds, fds);
    assert!(
        k.rss_kib > 0 && k.rss_kib.abs_diff(rss) * 4 < rss,
        "{} vs {rss}",
        k.rss_kib
    );
    assert!(k.workers.is_empty());
    assert_eq!(
        k.drop_reasons.len(),
        xvs_dataplane::stats::DropReason::COUNT
    );
    assert!(k.drop_reasons.iter().any(|r| r == "defence"));

    let (out, code) = xvsadm(&d.sock, &["--counters"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Conns 0 (max 1000)\nDefence drop_entry auto, drop_packet always, secure_tcp auto, amemthresh 2000: active, 0 entries dropped, 0 new conns refused\nProcess fds "), "{out}");
}
