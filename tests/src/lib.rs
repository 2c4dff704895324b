//! xvs-tests: helpers for end-to-end tests in network namespaces with real Linux kernels as
//! clients and real servers.
//!
//! Everything a test creates (namespaces, veths, processes) is owned by a guard and removed on
//! drop, so it is cleaned up on success, failure and panic. Names carry a per-run prefix
//! (`x` + pid + counter) so parallel runs never collide. Traffic stays inside namespaces the
//! test creates (198.18.0.0/15 and fd00::/8 addresses); nothing touches the host's interfaces.
//!
//! Root is required. Outside CI a test without root prints why it skips and passes; with
//! `CI=true` it fails, so CI can never pass by skipping.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether end-to-end tests can run here. Prints the reason when they cannot; panics in CI.
#[must_use]
pub fn can_run(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if root {
        return true;
    }
    let msg = format!(
        "SKIP {test}: end-to-end tests need root (network namespaces, veth, AF_XDP); run as root"
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{msg} (CI=true: refusing to skip)"
    );
    eprintln!("{msg}");
    false
}

/// A unique short prefix for this test's namespaces and interfaces (<= 7 chars).
#[must_use]
pub fn unique_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("x{}{}", std::process::id() % 10000, n)
}

/// Run a command, failing with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("spawn {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Run a command inside a namespace.
pub fn ns_run(ns: &str, args: &[&str]) -> Result<Output> {
    let mut a = vec!["netns", "exec", ns];
    a.extend_from_slice(args);
    run("ip", &a)
}

/// A network namespace, deleted on drop (which also deletes the veths inside it).
#[derive(Debug)]
pub struct Netns {
    /// Its name.
    pub name: String,
}

impl Netns {
    /// Create a namespace with loopback up.
    pub fn new(name: &str) -> Result<Self> {
        run("ip", &["netns", "add", name])?;
        let ns = Self {
            name: name.to_string(),
        };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Run a command in it.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        ns_run(&self.name, args)
    }

    /// Run a shell command line in it.
    pub fn sh(&self, line: &str) -> Result<Output> {
        self.run(&["sh", "-c", line])
    }

    /// Start a background process in it, killed on drop of the returned guard.
    pub fn spawn(&self, args: &[&str], log: Option<&Path>) -> Result<Proc> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null());
        if let Some(p) = log {
            let f = std::fs::File::create(p)?;
            c.stdout(f.try_clone()?).stderr(f);
        } else {
            c.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = c
            .spawn()
            .with_context(|| format!("spawn {args:?} in {}", self.name))?;
        Ok(Proc {
            child,
            what: args.join(" "),
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Create a veth pair `a` (in `ns_a`) <-> `b` (in `ns_b`), both up.
pub fn veth(a: &str, ns_a: &Netns, b: &str, ns_b: &Netns) -> Result<()> {
    run(
        "ip",
        &[
            "link", "add", a, "netns", &ns_a.name, "type", "veth", "peer", "name", b, "netns",
            &ns_b.name,
        ],
    )?;
    ns_a.run(&["ip", "link", "set", a, "up"])?;
    ns_b.run(&["ip", "link", "set", b, "up"])?;
    Ok(())
}

/// The MAC address of an interface in a namespace.
pub fn mac_of(ns: &Netns, ifname: &str) -> Result<String> {
    let out = ns.run(&["cat", &format!("/sys/class/net/{ifname}/address")])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A background process, killed (by its own PID) and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    /// Its PID.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send SIGTERM and wait up to `timeout` for it to exit; returns its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .output();
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = &self.what;
    }
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Create one with a unique name.
    pub fn new(tag: &str) -> Result<Self> {
        let p = std::env::temp_dir().join(format!("xvs-{tag}-{}", unique_prefix()));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }

    /// A path inside it.
    #[must_use]
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Path of a binary built by this workspace (target/<profile>/NAME), building nothing.
#[must_use]
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // tests run from target/<profile>/deps/<test>-hash
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    dir.join(name)
}
