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
    /// The command line it was started with (for messages).
    #[must_use]
    pub fn what(&self) -> &str {
        &self.what
    }

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

/// A test lab: a client, a director and real servers in their own namespaces.
///
/// Two layouts: [`Lab::two_segments`] puts the client on the director's port 0
/// (198.18.1.0/24, fd01::/64) and the real servers behind a bridge on port 1 (198.18.2.0/24,
/// fd02::/64), their gateway being the director (NAT, FULLNAT); [`Lab::one_lan`] puts client,
/// director and servers on one bridge (198.18.1.0/24, fd01::/64; DR and TUN). The director's
/// kernel gets no addresses: xvsd owns its interfaces. Checksum offload is turned off on the
/// client and server veths so their frames carry complete checksums, as on a real wire.
/// Dropping the lab deletes every namespace (and with them every veth).
#[derive(Debug)]
pub struct Lab {
    /// Prefix of every name.
    pub prefix: String,
    /// The client namespace.
    pub client: Netns,
    /// The director namespace (runs xvsd).
    pub director: Netns,
    /// The switch namespace holding the bridge.
    pub switch: Netns,
    /// One namespace per real server.
    pub servers: Vec<Netns>,
    /// Director interfaces, port order.
    pub dir_ifs: Vec<String>,
    /// Client IPv4 / IPv6 address.
    pub client_ip: (String, String),
    /// Server IPv4 / IPv6 addresses.
    pub server_ips: Vec<(String, String)>,
    /// The director's own addresses, `IF=IP/PREFIX` as xvsd's `--addr` takes them.
    pub dir_addrs: Vec<String>,
}

/// One side of a bridge port: create a veth `a` in `ns` and `b` in the switch, enslave `b`.
fn bridge_port(ns: &Netns, a: &str, sw: &Netns, b: &str, queues: u32) -> Result<()> {
    // Both ends get the same queue counts: native XDP on a veth needs its RX queues >= the
    // peer's TX queues (ENOSPC otherwise).
    let q = queues.to_string();
    run(
        "ip",
        &[
            "link",
            "add",
            a,
            "netns",
            &ns.name,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            b,
            "netns",
            &sw.name,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ],
    )?;
    sw.run(&["ip", "link", "set", b, "master", "br0"])?;
    sw.run(&["ip", "link", "set", b, "up"])?;
    ns.run(&["ip", "link", "set", a, "up"])?;
    Ok(())
}

fn quiet_host(ns: &Netns, ifname: &str) -> Result<()> {
    ns.run(&["ethtool", "-K", ifname, "tx", "off"])?;
    // No router solicitations / DAD delays getting in the way of v6 tests.
    let _ = ns.sh(&format!("sysctl -qw net.ipv6.conf.{ifname}.accept_dad=0"));
    Ok(())
}

impl Lab {
    fn base(servers: usize) -> Result<(String, Netns, Netns, Netns, Vec<Netns>)> {
        let p = unique_prefix();
        let client = Netns::new(&format!("{p}c"))?;
        let director = Netns::new(&format!("{p}d"))?;
        let switch = Netns::new(&format!("{p}s"))?;
        switch.run(&["ip", "link", "add", "br0", "type", "bridge"])?;
        switch.run(&["ip", "link", "set", "br0", "up"])?;
        let mut ss = Vec::new();
        for i in 0..servers {
            ss.push(Netns::new(&format!("{p}r{i}"))?);
        }
        for ns in [&client, &director] {
            let _ = ns
                .sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
        }
        for ns in &ss {
            let _ = ns
                .sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
        }
        Ok((p, client, director, switch, ss))
    }

    /// Client on port 0, servers behind a bridge on port 1; `queues` rx/tx queues on the
    /// director's veths.
    pub fn two_segments(servers: usize, queues: u32) -> Result<Self> {
        let (p, client, director, switch, ss) = Self::base(servers)?;
        let q = queues.to_string();
        run(
            "ip",
            &[
                "link",
                "add",
                "d0",
                "netns",
                &director.name,
                "numrxqueues",
                &q,
                "numtxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                "c0",
                "netns",
                &client.name,
                "numrxqueues",
                &q,
                "numtxqueues",
                &q,
            ],
        )?;
        director.run(&["ip", "link", "set", "d0", "up"])?;
        client.run(&["ip", "link", "set", "c0", "up"])?;
        quiet_host(&client, "c0")?;
        client.run(&["ip", "addr", "add", "198.18.1.2/24", "dev", "c0"])?;
        client.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            "fd01::2/64",
            "dev",
            "c0",
            "nodad",
        ])?;
        client.run(&["ip", "route", "add", "default", "via", "198.18.1.1"])?;
        client.run(&["ip", "-6", "route", "add", "default", "via", "fd01::1"])?;
        bridge_port(&director, "d1", &switch, "sd", queues)?;
        let mut server_ips = Vec::new();
        for (i, s) in ss.iter().enumerate() {
            bridge_port(s, "r0", &switch, &format!("s{i}"), 1)?;
            quiet_host(s, "r0")?;
            let (v4, v6) = (format!("198.18.2.{}", 10 + i), format!("fd02::{}", 10 + i));
            s.run(&["ip", "addr", "add", &format!("{v4}/24"), "dev", "r0"])?;
            s.run(&[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                "r0",
                "nodad",
            ])?;
            s.run(&["ip", "route", "add", "default", "via", "198.18.2.1"])?;
            s.run(&["ip", "-6", "route", "add", "default", "via", "fd02::1"])?;
            server_ips.push((v4, v6));
        }
        Ok(Self {
            prefix: p,
            client,
            director,
            switch,
            servers: ss,
            dir_ifs: vec!["d0".into(), "d1".into()],
            client_ip: ("198.18.1.2".into(), "fd01::2".into()),
            server_ips,
            dir_addrs: vec![
                "d0=198.18.1.1/24".into(),
                "d0=fd01::1/64".into(),
                "d1=198.18.2.1/24".into(),
                "d1=fd02::1/64".into(),
            ],
        })
    }

    /// Client, director (one port) and servers on one bridge.
    pub fn one_lan(servers: usize) -> Result<Self> {
        let (p, client, director, switch, ss) = Self::base(servers)?;
        bridge_port(&director, "d0", &switch, "sd", 1)?;
        bridge_port(&client, "c0", &switch, "sc", 1)?;
        quiet_host(&client, "c0")?;
        client.run(&["ip", "addr", "add", "198.18.1.2/24", "dev", "c0"])?;
        client.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            "fd01::2/64",
            "dev",
            "c0",
            "nodad",
        ])?;
        let mut server_ips = Vec::new();
        for (i, s) in ss.iter().enumerate() {
            bridge_port(s, "r0", &switch, &format!("s{i}"), 1)?;
            quiet_host(s, "r0")?;
            let (v4, v6) = (format!("198.18.1.{}", 10 + i), format!("fd01::{}", 10 + i));
            s.run(&["ip", "addr", "add", &format!("{v4}/24"), "dev", "r0"])?;
            s.run(&[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                "r0",
                "nodad",
            ])?;
            server_ips.push((v4, v6));
        }
        Ok(Self {
            prefix: p,
            client,
            director,
            switch,
            servers: ss,
            dir_ifs: vec!["d0".into()],
            client_ip: ("198.18.1.2".into(), "fd01::2".into()),
            server_ips,
            dir_addrs: vec!["d0=198.18.1.1/24".into(), "d0=fd01::1/64".into()],
        })
    }

    /// Put `vip` (v4 or v6) on every server's loopback with arp_ignore=1 / arp_announce=2, as
    /// a DR real server is configured.
    pub fn servers_hold_vip(&self, vip: &str) -> Result<()> {
        let plen = if vip.contains(':') { "128" } else { "32" };
        for s in &self.servers {
            s.sh("sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2")?;
            s.run(&["ip", "addr", "add", &format!("{vip}/{plen}"), "dev", "lo"])?;
        }
        Ok(())
    }

    /// Start one HTTP server per real server (python's http.server on `port`, serving a file
    /// `/id` that names the server: "r0", "r1", ...). Waits until each listens.
    pub fn start_http(&self, dir: &TempDir, port: u16) -> Result<Vec<Proc>> {
        let port_s = port.to_string();
        self.start_on_servers(
            dir,
            "http",
            port,
            "ss -Hltn 'sport = :{port}' | grep -q LISTEN",
            |i| {
                let root = dir.join(&format!("www{i}"));
                std::fs::create_dir_all(&root)?;
                std::fs::write(root.join("id"), format!("r{i}\n"))?;
                let root_s = root.display().to_string();
                Ok([
                    PYTHON,
                    "-m",
                    "http.server",
                    "--bind",
                    "::",
                    "--directory",
                    &root_s,
                    &port_s,
                ]
                .map(String::from)
                .to_vec())
            },
        )
    }

    /// Start one process per real server (`argv(i)` for server `i`, logged to
    /// `dir/{what}{i}.log`) and wait until `ready` (with `{port}` replaced) succeeds in each
    /// server's namespace.
    fn start_on_servers(
        &self,
        dir: &TempDir,
        what: &str,
        port: u16,
        ready: &str,
        mut argv: impl FnMut(usize) -> Result<Vec<String>>,
    ) -> Result<Vec<Proc>> {
        let ready = ready.replace("{port}", &port.to_string());
        let mut procs = Vec::new();
        for (i, s) in self.servers.iter().enumerate() {
            let args = argv(i)?;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            procs.push(s.spawn(&args, Some(&dir.join(&format!("{what}{i}.log"))))?);
            if !wait_for(Duration::from_secs(10), || s.sh(&ready).is_ok()) {
                bail!("{what} server in {} did not start", s.name);
            }
        }
        Ok(procs)
    }

    /// `curl` from the client: the body of `http://[addr]:port/id`, or an error.
    pub fn curl(&self, addr: &str, port: u16, timeout_s: u32) -> Result<String> {
        let host = if addr.contains(':') {
            format!("[{addr}]")
        } else {
            addr.to_string()
        };
        let t = timeout_s.to_string();
        let out = self.client.run(&[
            "curl",
            "-sS",
            "--max-time",
            &t,
            "--noproxy",
            "*",
            &format!("http://{host}:{port}/id"),
        ])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// A running `xvsd` in the lab's director namespace, stopped (SIGTERM, then kill) on drop.
#[derive(Debug)]
pub struct Xvsd {
    /// The process.
    pub proc: Proc,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
}

/// The built binary `name`, or an error telling how to build it.
pub fn bin(name: &str) -> Result<PathBuf> {
    let p = workspace_bin(name);
    if !p.exists() {
        bail!(
            "{} not found: run `cargo build --workspace --bins` first",
            p.display()
        );
    }
    Ok(p)
}

impl Xvsd {
    /// Start xvsd on every director interface of `lab` with the lab's addresses, plus `extra`
    /// flags; waits for the control socket.
    pub fn start(lab: &Lab, dir: &TempDir, extra: &[&str]) -> Result<Self> {
        let xvsd = bin("xvsd")?;
        let socket = dir.join("xvs.sock");
        let log = dir.join("xvsd.log");
        let sock_s = socket.display().to_string();
        let xvsd_s = xvsd.display().to_string();
        let mut args: Vec<String> = vec![xvsd_s, "--socket".into(), sock_s];
        for i in &lab.dir_ifs {
            args.push("--iface".into());
            args.push(i.clone());
        }
        for a in &lab.dir_addrs {
            args.push("--addr".into());
            args.push(a.clone());
        }
        args.extend(extra.iter().map(|s| (*s).to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut proc = lab.director.spawn(&argv, Some(&log))?;
        let up = wait_for(Duration::from_secs(20), || socket.exists() || !proc.alive());
        if !up || !socket.exists() {
            let l = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("xvsd did not start: {l}");
        }
        // Ready means answering ARP on the client's port: on a loaded machine the first
        // resolution can otherwise outlast the client's 3 ARP probes (EHOSTUNREACH).
        let first_ip = lab
            .dir_addrs
            .first()
            .and_then(|a| a.split_once('=').map(|(_, ip)| ip.split('/').next()))
            .flatten();
        if let Some(ip) = first_ip
            && !lab.director_answers_arp(ip, Duration::from_secs(20))
        {
            let l = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("xvsd does not answer ARP for {ip}: {l}");
        }
        Ok(Self { proc, socket, log })
    }

    /// Run `xvsadm ARGS` against this daemon; returns (exit code, stdout, stderr).
    pub fn adm(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let out = Command::new(bin("xvsadm")?)
            .args(args)
            .env("XVS_SOCKET", &self.socket)
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Run `xvsadm ARGS` and fail unless it exits 0; returns stdout.
    pub fn adm_ok(&self, args: &[&str]) -> Result<String> {
        let (code, out, err) = self.adm(args)?;
        if code != 0 {
            bail!("xvsadm {} exited {code}: {err}", args.join(" "));
        }
        Ok(out)
    }

    /// `-A -t 198.18.1.100:80 -s rr` with every server of `lab` as a NAT dest on port 8080
    /// (the service most end-to-end tests put traffic through).
    pub fn nat_service_over_all(&self, lab: &Lab) -> Result<()> {
        self.nat_service_over(lab, lab.server_ips.len())
    }

    /// [`Self::nat_service_over_all`] over the first `n` servers of `lab` only.
    pub fn nat_service_over(&self, lab: &Lab, n: usize) -> Result<()> {
        self.adm_ok(&["-A", "-t", "198.18.1.100:80", "-s", "rr"])?;
        for (v4, _) in lab.server_ips.iter().take(n) {
            self.adm_ok(&[
                "-a",
                "-t",
                "198.18.1.100:80",
                "-r",
                &format!("{v4}:8080"),
                "-m",
            ])?;
        }
        Ok(())
    }

    /// `xvsadm --counters --json`, parsed: drops by reason, the defence, the conn table, each
    /// worker's UMEM frames, the daemon's fds and RSS.
    pub fn counters(&self) -> Result<serde_json::Value> {
        let out = self.adm_ok(&["--counters", "--json"])?;
        serde_json::from_str(&out).with_context(|| format!("xvsadm --counters --json: {out}"))
    }

    /// The daemon's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Xvsd {
    fn drop(&mut self) {
        if self.proc.alive() {
            let _ = self.proc.terminate(Duration::from_secs(5));
        }
    }
}

/// A TCP server for the real servers (`python3 tcp_id.py ID PORT`), dual-stack on `::`.
/// Each connection is served line by line: `stream N PAUSE` sends N bytes in 4 KiB chunks
/// with PAUSE seconds between chunks, then closes; any other line is echoed back prefixed
/// with the server's ID and a space. It logs `conn ADDR PORT` per accepted connection,
/// `streamed N` after a stream, and `error ...` when a connection fails (e.g. a reset).
pub const TCP_ID_PY: &str = r#"
import socket, sys, threading, time
ident, port = sys.argv[1].encode(), int(sys.argv[2])
def serve(c, a):
    print('conn', a[0], a[1], flush=True)
    try:
        f = c.makefile('rb')
        for line in f:
            w = line.split()
            if len(w) == 3 and w[0] == b'stream':
                n, pause, sent = int(w[1]), float(w[2]), 0
                while sent < n:
                    k = min(4096, n - sent)
                    c.sendall(b'x' * k)
                    sent += k
                    time.sleep(pause)
                print('streamed', sent, flush=True)
                break
            c.sendall(ident + b' ' + line)
    except OSError as e:
        print('error', e, flush=True)
    c.close()
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::', port))
s.listen(256)
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
"#;

/// A UDP echo server for the real servers (`python3 udp_echo.py ID PORT`), dual-stack: every
/// datagram is answered with the server's ID, a space and the datagram.
pub const UDP_ECHO_PY: &str = r"
import socket, sys
ident, port = sys.argv[1].encode(), int(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('::', port))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(ident + b' ' + d, a)
";

/// The client side (`python3 client.py HOST PORT CMD ARGS...`); every command prints one line
/// per result on stdout and exits non-zero on any error (a reset, a timeout, a short read):
/// - `ask N`: N TCP connections, one after another, each sends one line and prints the
///   answering server's ID.
/// - `hold GOFILE`: one TCP connection: asks once and prints `first ID`, waits until GOFILE
///   exists, asks again on the same connection and prints `after ID`.
/// - `stream N PAUSE`: one TCP connection asks for an N-byte stream and prints `got BYTES`.
/// - `udp N`: N datagrams from one UDP socket (one flow), each waiting for its answer (up to
///   3 tries of 1 s: the first may wait for address resolution); prints each answer's ID.
pub const CLIENT_PY: &str = r"
import os, socket, sys, time
host, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
def conn():
    c = socket.create_connection((host, port), timeout=10)
    return c, c.makefile('rb')
def ask(c, f, word):
    c.sendall(word.encode() + b'\n')
    line = f.readline()
    w = line.split()
    if len(w) != 2 or w[1] != word.encode():
        sys.exit('bad answer %r' % line)
    return w[0].decode()
if cmd == 'ask':
    for i in range(int(sys.argv[4])):
        c, f = conn()
        print(ask(c, f, 'q%d' % i), flush=True)
        c.close()
elif cmd == 'hold':
    c, f = conn()
    print('first', ask(c, f, 'a'), flush=True)
    while not os.path.exists(sys.argv[4]):
        time.sleep(0.05)
    print('after', ask(c, f, 'b'), flush=True)
    c.close()
elif cmd == 'stream':
    n = int(sys.argv[4])
    c, f = conn()
    c.settimeout(30)
    c.sendall(('stream %d %s\n' % (n, sys.argv[5])).encode())
    got = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        got += len(d)
    print('got', got, flush=True)
    if got != n:
        sys.exit('short stream: %d of %d' % (got, n))
elif cmd == 'udp':
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    for i in range(int(sys.argv[4])):
        msg = b'd%d' % i
        for t in range(3):
            s.sendto(msg, (host, port))
            try:
                d = s.recv(65535)
                break
            except socket.timeout:
                if t == 2:
                    sys.exit('no answer to datagram %d' % i)
        w = d.split()
        if len(w) != 2 or w[1] != msg:
            sys.exit('bad answer %r' % d)
        print(w[0].decode(), flush=True)
else:
    sys.exit('unknown command ' + cmd)
";

/// Write a helper script into `dir` (once) and return its path as a string.
pub fn script(dir: &TempDir, name: &str, body: &str) -> Result<String> {
    let p = dir.join(name);
    if !p.exists() {
        std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(p.display().to_string())
}

/// The Python interpreter the helpers run with (not the pyenv shim).
pub const PYTHON: &str = "/usr/bin/python3";

impl Lab {
    /// Start [`TCP_ID_PY`] on `port` on every real server (IDs "r0", "r1", ...; logs in
    /// `dir/tcpid{i}.log`). Waits until each listens.
    pub fn start_tcp_id(&self, dir: &TempDir, port: u16) -> Result<Vec<Proc>> {
        let py = script(dir, "tcp_id.py", TCP_ID_PY)?;
        self.start_on_servers(
            dir,
            "tcpid",
            port,
            "ss -Hltn 'sport = :{port}' | grep -q LISTEN",
            |i| {
                Ok(vec![
                    PYTHON.into(),
                    "-u".into(),
                    py.clone(),
                    format!("r{i}"),
                    port.to_string(),
                ])
            },
        )
    }

    /// Start [`UDP_ECHO_PY`] on `port` on every real server. Waits until each is bound.
    pub fn start_udp_echo(&self, dir: &TempDir, port: u16) -> Result<Vec<Proc>> {
        let py = script(dir, "udp_echo.py", UDP_ECHO_PY)?;
        self.start_on_servers(
            dir,
            "udp",
            port,
            "ss -Hlun 'sport = :{port}' | grep -q .",
            |i| {
                Ok(vec![
                    PYTHON.into(),
                    "-u".into(),
                    py.clone(),
                    format!("r{i}"),
                    port.to_string(),
                ])
            },
        )
    }

    /// Run [`CLIENT_PY`] in the client namespace and return its stdout lines; fails (with its
    /// output) when it exits non-zero.
    pub fn client_py(&self, dir: &TempDir, args: &[&str]) -> Result<Vec<String>> {
        let py = script(dir, "client.py", CLIENT_PY)?;
        let mut a = vec![PYTHON, py.as_str()];
        a.extend_from_slice(args);
        let out = self.client.run(&a)?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// Start [`CLIENT_PY`] in the background in the client namespace, output to `log`.
    pub fn spawn_client_py(&self, dir: &TempDir, args: &[&str], log: &Path) -> Result<Proc> {
        let py = script(dir, "client.py", CLIENT_PY)?;
        let mut a = vec![PYTHON, "-u", py.as_str()];
        a.extend_from_slice(args);
        self.client.spawn(&a, Some(log))
    }
}

impl Lab {
    /// Whether the client resolves `ip` (an IPv4 address of the director on the client's
    /// segment) within `timeout`: a datagram to the discard port triggers the ARP request,
    /// then the client's neighbour table must hold a MAC for it.
    pub fn director_answers_arp(&self, ip: &str, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            let _ = self
                .client
                .run(&["bash", "-c", &format!("echo > /dev/udp/{ip}/9")]);
            let resolved = wait_for(Duration::from_millis(1500), || {
                self.client
                    .run(&["ip", "neigh", "show", ip])
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("lladdr"))
                    .unwrap_or(false)
            });
            if resolved {
                return true;
            }
        }
        false
    }
}

impl Proc {
    /// Wait up to `timeout` for it to exit by itself; returns its exit code (None: still
    /// running, or killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
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

/// Count the lines of `text` starting with `prefix` (e.g. `-Lnc` rows of one protocol).
#[must_use]
pub fn count_lines(text: &str, prefix: &str) -> usize {
    text.lines().filter(|l| l.starts_with(prefix)).count()
}

/// The whitespace-separated columns of the first line of `text` starting with `prefix`.
#[must_use]
pub fn row<'a>(text: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .map(|l| l.split_whitespace().collect())
}
