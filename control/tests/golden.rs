//! Golden tests: ipvsadm command sequences run by the real `xvsadm` against a real `xvsd`,
//! comparing stdout, stderr and exit status byte for byte with what ipvsadm 1.31 prints.
//!
//! Each `tests/golden/*.case` file runs against a fresh daemon in a temporary directory. Format:
//! `$ argv...` a command (argv\[0\] is passed as given, so messages name it), `< text` a line of
//! its standard input, `> text` / `>` a line of expected stdout, `! text` / `!` a line of
//! expected stderr, `? N` the expected exit status (ends the step). The expected texts were
//! derived from ipvsadm.c's printf formats and messages, not from xvsadm's output. In an
//! expected stdout line `{N}` stands for one run of digits (the daemon's file descriptor count
//! and memory in `--counters`, which no case can know); every other byte must match.
//! Names: the daemon and the CLI read `tests/golden/hosts` and `tests/golden/services`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "test code: a failure should panic loudly"
)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn start_daemon(extra: &[&str]) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/xvs.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_xvsd"))
        .arg("--socket")
        .arg(&sock)
        .args(extra)
        .env("XVS_HOSTS_FILE", golden_dir().join("hosts"))
        .env("XVS_SERVICES_FILE", golden_dir().join("services"))
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

impl Daemon {
    fn stop(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "xvsd exited with {st}");
        assert!(!self.sock.exists(), "socket left behind");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run xvsadm with argv (argv\[0\] kept) against `sock`.
fn xvsadm(sock: &Path, argv: &[String], stdin: &str) -> (String, String, i32) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xvsadm"));
    cmd.arg0(&argv[0])
        .args(&argv[1..])
        .env("XVS_SOCKET", sock)
        .env("XVS_HOSTS_FILE", golden_dir().join("hosts"))
        .env("XVS_SERVICES_FILE", golden_dir().join("services"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

struct Step {
    line: usize,
    argv: Vec<String>,
    stdin: String,
    stdout: String,
    stderr: String,
    code: i32,
}

fn parse_case(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut cur: Option<Step> = None;
    for (n, l) in text.lines().enumerate() {
        let body = |p: &str| l.strip_prefix(p).map(|r| r.strip_prefix(' ').unwrap_or(r));
        if let Some(c) = l.strip_prefix("$ ") {
            assert!(cur.is_none(), "line {}: step without '?'", n + 1);
            cur = Some(Step {
                line: n + 1,
                argv: c.split_whitespace().map(str::to_owned).collect(),
                stdin: String::new(),
                stdout: String::new(),
                stderr: String::new(),
                code: 0,
            });
        } else if let Some(s) = body("<") {
            let st = cur.as_mut().unwrap();
            st.stdin.push_str(s);
            st.stdin.push('\n');
        } else if let Some(s) = body(">") {
            let st = cur.as_mut().unwrap();
            st.stdout.push_str(s);
            st.stdout.push('\n');
        } else if let Some(s) = body("!") {
            let st = cur.as_mut().unwrap();
            st.stderr.push_str(s);
            st.stderr.push('\n');
        } else if let Some(s) = l.strip_prefix("? ") {
            let mut st = cur.take().unwrap();
            st.code = s.trim().parse().unwrap();
            steps.push(st);
        } else if !l.is_empty() && !l.starts_with('#') {
            panic!("line {}: cannot parse {l:?}", n + 1);
        }
    }
    assert!(cur.is_none(), "unterminated step");
    steps
}

/// `got` equals `expected`, where each `{N}` of `expected` matches one or more ASCII digits.
fn stdout_matches(expected: &str, got: &str) -> bool {
    let mut parts = expected.split("{N}");
    let Some(first) = parts.next() else {
        return got.is_empty();
    };
    let Some(mut rest) = got.strip_prefix(first) else {
        return false;
    };
    for part in parts {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        match rest[digits..].strip_prefix(part) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

#[test]
fn digit_placeholders_match_only_digits() {
    assert!(stdout_matches(
        "fds {N}, rss {N} KiB\n",
        "fds 7, rss 14428 KiB\n"
    ));
    assert!(!stdout_matches(
        "fds {N}, rss {N} KiB\n",
        "fds 7, rss  KiB\n"
    ));
    assert!(!stdout_matches("fds {N}\n", "fds x\n"));
    assert!(!stdout_matches("a\n", "a\nb\n"));
    assert!(stdout_matches("a\n", "a\n"));
}

fn run_case(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let d = start_daemon(&[]);
    let mut failures = Vec::new();
    for st in parse_case(&text) {
        let (out, err, code) = xvsadm(&d.sock, &st.argv, &st.stdin);
        if !stdout_matches(&st.stdout, &out) || err != st.stderr || code != st.code {
            failures.push(format!(
                "{}:{}: `{}`\n--- expected stdout\n{}--- got stdout\n{}--- expected stderr\n{}--- got stderr\n{}--- status expected {} got {}\n",
                path.file_name().unwrap().to_string_lossy(),
                st.line,
                st.argv.join(" "),
                st.stdout,
                out,
                st.stderr,
                err,
                st.code,
                code
            ));
        }
    }
    d.stop();
    failures
}

#[test]
fn golden_cases() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    let failures: Vec<String> = files.iter().flat_map(|f| run_case(f)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn xvsd_restore_file_then_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules");
    std::fs::write(
        &file,
        "-A -t 10.5.0.1:80 -s rr\n-a -t 10.5.0.1:80 -r 10.5.1.2:80 -m -w 1\n\
         -a -t 10.5.0.1:80 -r 10.5.1.1:80 -m -w 4\n--set 100 0 0\n",
    )
    .unwrap();
    let d = start_daemon(&["--restore", file.to_str().unwrap(), "--conn-tab-bits", "16"]);
    let argv = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let (out, err, code) = xvsadm(&d.sock, &argv("ipvsadm -Ln"), "");
    let expect = format!(
        "IP Virtual Server version 1.2.1 (size=65536)\n\
         Prot LocalAddress:Port Scheduler Flags\n\
         \x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  10.5.0.1:80 rr\n{}\n{}\n",
        format_args!(
            "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
            "10.5.1.1:80", "Masq", 4, 0, 0
        ),
        format_args!(
            "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
            "10.5.1.2:80", "Masq", 1, 0, 0
        ),
    );
    assert_eq!((out.as_str(), err.as_str(), code), (expect.as_str(), "", 0));
    let (out, _, _) = xvsadm(&d.sock, &argv("ipvsadm -L --timeout"), "");
    assert_eq!(out, "Timeout (tcp tcpfin udp): 100 120 300\n");
    d.stop();
}

#[test]
fn xvsd_bad_restore_file_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules");
    std::fs::write(
        &file,
        "-A -t 10.5.0.1:80 -s rr\n\n-a -t 10.5.0.1:80 -r 10.5.1.1 -w x\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xvsd"))
        .arg("--socket")
        .arg(dir.path().join("s"))
        .arg("--restore")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: illegal weight specified", file.display())),
        "{err}"
    );
    assert!(!dir.path().join("s").exists());
    // A semantic error is refused too.
    std::fs::write(&file, "-a -t 10.5.0.1:80 -r 10.5.1.1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xvsd"))
        .arg("--socket")
        .arg(dir.path().join("s"))
        .arg("--restore")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":1: Service not defined"));
}

#[test]
fn no_daemon_is_exit_2() {
    let argv: Vec<String> = ["ipvsadm", "-Ln"].iter().map(|s| (*s).to_owned()).collect();
    let (out, err, code) = xvsadm(Path::new("/nonexistent/xvs.sock"), &argv, "");
    assert_eq!((out.as_str(), code), ("", 2));
    assert!(
        err.starts_with("Can't initialize ipvs: No such file or directory\n"),
        "{err}"
    );
    // -h needs no daemon.
    let argv: Vec<String> = ["ipvsadm", "-h"].iter().map(|s| (*s).to_owned()).collect();
    let (out, _, code) = xvsadm(Path::new("/nonexistent/xvs.sock"), &argv, "");
    assert_eq!(code, 0);
    assert!(out.starts_with("ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  ipvsadm -A|E virtual-service"));
}
