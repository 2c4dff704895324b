//! The control thread: owns the configuration, validates every change with the kernel's rules
//! and errnos (`ip_vs_ctl.c`), and publishes each accepted change as one new snapshot through
//! [`Director::apply`].
//!
//! Invariants: `config` is always exactly what was last applied; a command that fails (in
//! validation or in `apply`) changes neither. Dests are kept in the kernel's list order: a new
//! dest goes to the *head* of its service's list (`list_add_rcu(&dest->n_list,
//! &svc->destinations)` in `__ip_vs_update_dest`), an edited one keeps its place. A `-R` input
//! is parsed whole, then its commands are applied to a working copy and published with one
//! `apply` (so 10,000 services cost one snapshot build, not 10,000).
//! Never: let one client stall another (each client has its own thread and frames are read
//! without the lock, which is held only to answer), panic on a request, or touch the data plane
//! other than through the `Director`.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xvs_dataplane::director::{Director, ListCounters};
use xvs_dataplane::service::{Config, DestConf, ServiceConf, ServiceKey, svc_flags};

use crate::cli::names::Names;
use crate::cli::parse::{self, Action};
use crate::proto::{
    self, Command, ConnRow, Counters, DestEntry, DestSpec, Errno, ErrorReply, Fwd,
    IPVS_VERSION_CODE, ListItem, Op, ProtoError, RequestBody, Response, ResponseBody,
    RestoreReport, ServiceEntry, ServiceSpec, Stats64, SvcKey, tun_type,
};

/// The conn listing hook the lead wires to the conn table (`-Lnc`).
pub type ConnsHook = Box<dyn Fn() -> Vec<ConnRow> + Send>;

/// The data-plane counters hook (`--counters`): drops, defence, conn table, workers' frames.
/// The control thread adds the process figures (fds, RSS) itself.
pub type CountersHook = Box<dyn Fn() -> Counters + Send>;

/// What the control thread asks of the rest of the daemon.
pub struct Hooks {
    /// Current connections (`-c`).
    pub conns: ConnsHook,
    /// Data-plane counters (`--counters`).
    pub counters: CountersHook,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            conns: Box::new(Vec::new),
            counters: Box::new(|| Counters {
                drop_reasons: drop_reason_names(),
                ..Counters::default()
            }),
        }
    }
}

/// The data plane's drop reason names, in index order.
#[must_use]
pub fn drop_reason_names() -> Vec<String> {
    xvs_dataplane::stats::DropReason::ALL
        .iter()
        .map(|r| r.name().to_owned())
        .collect()
}

/// This process's open file descriptors (not counting the one used to list them) and its
/// resident memory in KiB, from `/proc/self`; zeros where `/proc` cannot be read.
#[must_use]
pub fn process_figures() -> (u64, u64) {
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| {
        // The directory stream itself holds one descriptor while it is read.
        (d.count() as u64).saturating_sub(1)
    });
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    (fds, rss_kib)
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

/// Items per listing frame (keeps frames far below [`proto::MAX_FRAME`]).
const LIST_CHUNK: usize = 1500;
/// Conn rows per frame.
const CONN_CHUNK: usize = 2500;
/// Most clients served at once.
pub const MAX_CLIENTS: usize = 64;
/// Largest `-R` input accepted on one connection.
const MAX_RESTORE: usize = 512 << 20;
/// The kernel refuses timeouts above INT_MAX / HZ (HZ = 250 assumed).
const MAX_KERNEL_TIMEOUT: u32 = (i32::MAX as u32) / 250;

/// A working copy of the configuration, indexed for fast command application.
/// Dests are kept *reversed* (append = kernel head insertion) so adding is O(1).
struct Work {
    services: Vec<ServiceConf>,
    index: HashMap<ServiceKey, usize>,
    timeouts: xvs_dataplane::service::Timeouts,
}

impl Work {
    fn from_config(c: &Config) -> Self {
        let services: Vec<ServiceConf> = c
            .services
            .iter()
            .map(|s| {
                let mut s = s.clone();
                s.dests.reverse();
                s
            })
            .collect();
        let index = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key, i))
            .collect();
        Self {
            services,
            index,
            timeouts: c.timeouts,
        }
    }

    fn into_config(self) -> Config {
        Config {
            services: self
                .services
                .into_iter()
                .map(|mut s| {
                    s.dests.reverse();
                    s
                })
                .collect(),
            timeouts: self.timeouts,
        }
    }

    fn reindex(&mut self) {
        self.index = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key, i))
            .collect();
    }

    fn svc_mut(&mut self, k: &SvcKey) -> Result<&mut ServiceConf, Errno> {
        let key = k.to_service_key().ok_or(Errno::ESRCH)?;
        let i = *self.index.get(&key).ok_or(Errno::ESRCH)?;
        Ok(&mut self.services[i])
    }
}

fn check_service(spec: &ServiceSpec) -> Result<ServiceKey, Errno> {
    let key = spec.key.to_service_key().ok_or(Errno::EINVAL)?;
    if matches!(spec.key, SvcKey::Fwmark { mark: 0, .. }) {
        return Err(Errno::EINVAL);
    }
    if !xvs_dataplane::sched::NAMES.contains(&spec.sched_name.as_str()) {
        return Err(Errno::ENOENT);
    }
    if spec.pe_name.as_deref().is_some_and(|p| p != "sip") {
        return Err(Errno::ENOENT);
    }
    if spec.key.is_v6() && !(1..=128).contains(&spec.netmask) {
        return Err(Errno::EINVAL);
    }
    Ok(key)
}

fn check_dest(svc_v6: bool, d: &DestSpec, add: bool) -> Result<(), Errno> {
    if d.addr.is_ipv6() != svc_v6 && d.fwd != Fwd::Tunnel {
        return Err(Errno::EINVAL);
    }
    if d.weight < 0 || d.l_threshold > d.u_threshold {
        return Err(Errno::ERANGE);
    }
    if d.tun_type == tun_type::GUE && d.tun_port == 0 {
        return Err(Errno::EINVAL);
    }
    if add {
        // ip_vs_new_dest: only unicast (or local) addresses.
        let bad = match d.addr {
            IpAddr::V4(a) => a.octets()[0] == 0 || a.is_broadcast() || a.is_multicast(),
            IpAddr::V6(a) => {
                a.is_unspecified()
                    || a.is_multicast()
                    || (a.segments()[0] & 0xffc0) == 0xfe80
                    || a.to_ipv4_mapped().is_some()
            }
        };
        if bad {
            return Err(Errno::EINVAL);
        }
    }
    Ok(())
}

fn dest_conf(d: &DestSpec) -> DestConf {
    DestConf {
        addr: d.addr,
        port: d.port,
        fwd: d.fwd.into(),
        weight: d.weight,
        u_threshold: d.u_threshold,
        l_threshold: d.l_threshold,
        tun: d.tun_conf(),
    }
}

/// Apply one command to the working copy. `zeros` collects `-Z` requests (counters are not
/// configuration: they are zeroed after the snapshot is published).
fn apply_cmd(
    w: &mut Work,
    cmd: &Command,
    zeros: &mut Vec<Option<ServiceKey>>,
) -> Result<(), Errno> {
    match cmd {
        Command::AddService(spec) => {
            let key = check_service(spec)?;
            if w.index.contains_key(&key) {
                return Err(Errno::EEXIST);
            }
            w.index.insert(key, w.services.len());
            w.services.push(ServiceConf {
                key,
                sched_name: spec.sched_name.clone(),
                flags: spec.flags & !svc_flags::HASHED,
                timeout_s: spec.timeout_s,
                netmask: spec.netmask,
                pe_name: spec.pe_name.clone(),
                dests: Vec::new(),
                laddrs: Vec::new(),
            });
        }
        Command::EditService(spec) => {
            let s = w.svc_mut(&spec.key)?;
            check_service(spec)?;
            s.sched_name.clone_from(&spec.sched_name);
            s.flags = spec.flags & !svc_flags::HASHED;
            s.timeout_s = spec.timeout_s;
            s.netmask = spec.netmask;
            s.pe_name.clone_from(&spec.pe_name);
        }
        Command::DelService(k) => {
            let key = k.to_service_key().ok_or(Errno::ESRCH)?;
            let i = *w.index.get(&key).ok_or(Errno::ESRCH)?;
            w.services.remove(i);
            w.reindex();
        }
        Command::Flush => {
            w.services.clear();
            w.index.clear();
        }
        Command::AddDest(k, d) => {
            let s = w.svc_mut(k)?;
            check_dest(k.is_v6(), d, false)?;
            if s.dests.iter().any(|x| x.addr == d.addr && x.port == d.port) {
                return Err(Errno::EEXIST);
            }
            check_dest(k.is_v6(), d, true)?;
            // Reversed storage: pushing here is inserting at the kernel list's head.
            s.dests.push(dest_conf(d));
        }
        Command::EditDest(k, d) => {
            let s = w.svc_mut(k)?;
            check_dest(k.is_v6(), d, false)?;
            let x = s
                .dests
                .iter_mut()
                .find(|x| x.addr == d.addr && x.port == d.port)
                .ok_or(Errno::ENOENT)?;
            *x = dest_conf(d);
        }
        Command::DelDest(k, addr, port) => {
            let s = w.svc_mut(k)?;
            let i = s
                .dests
                .iter()
                .position(|x| x.addr == *addr && x.port == *port)
                .ok_or(Errno::ENOENT)?;
            s.dests.remove(i);
        }
        Command::Zero(k) => match k {
            Some(k) => {
                let key = k.to_service_key().ok_or(Errno::ESRCH)?;
                if !w.index.contains_key(&key) {
                    return Err(Errno::ESRCH);
                }
                zeros.push(Some(key));
            }
            None => zeros.push(None),
        },
        Command::SetTimeouts { tcp, tcp_fin, udp } => {
            if [*tcp, *tcp_fin, *udp]
                .iter()
                .any(|&t| t > MAX_KERNEL_TIMEOUT)
            {
                return Err(Errno::EINVAL);
            }
            if *tcp != 0 {
                w.timeouts.tcp = *tcp;
            }
            if *tcp_fin != 0 {
                w.timeouts.tcp_fin = *tcp_fin;
            }
            if *udp != 0 {
                w.timeouts.udp = *udp;
            }
        }
        Command::StartDaemon | Command::StopDaemon => return Err(Errno::ENOSYS),
        Command::AddLaddr(k, a) => {
            let s = w.svc_mut(k)?;
            if s.laddrs.contains(a) {
                return Err(Errno::EEXIST);
            }
            s.laddrs.push(*a);
        }
        Command::DelLaddr(k, a) => {
            let s = w.svc_mut(k)?;
            let i = s.laddrs.iter().position(|x| x == a).ok_or(Errno::ENOENT)?;
            s.laddrs.remove(i);
        }
    }
    Ok(())
}

fn stats64(c: &ListCounters) -> Stats64 {
    Stats64 {
        conns: c.stats.conns,
        inpkts: c.stats.inpkts,
        outpkts: c.stats.outpkts,
        inbytes: c.stats.inbytes,
        outbytes: c.stats.outbytes,
        cps: c.rate.conns,
        inpps: c.rate.inpkts,
        outpps: c.rate.outpkts,
        inbps: c.rate.inbytes,
        outbps: c.rate.outbytes,
    }
}

fn service_spec(s: &ServiceConf) -> ServiceSpec {
    ServiceSpec {
        key: SvcKey::from_service_key(&s.key),
        sched_name: s.sched_name.clone(),
        flags: s.flags,
        timeout_s: s.timeout_s,
        netmask: s.netmask,
        pe_name: s.pe_name.clone(),
    }
}

fn dest_spec(d: &DestConf) -> DestSpec {
    DestSpec {
        addr: d.addr,
        port: d.port,
        fwd: d.fwd.into(),
        weight: d.weight,
        u_threshold: d.u_threshold,
        l_threshold: d.l_threshold,
        tun_type: DestSpec::tun_type_of(d.tun.kind),
        tun_port: d.tun.port,
        tun_flags: d.tun.flags,
    }
}

/// The control thread's state.
pub struct Server {
    config: Config,
    director: Arc<Director>,
    hooks: Hooks,
    conn_tab_bits: u8,
    names: Names,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("services", &self.config.services.len())
            .field("conn_tab_bits", &self.conn_tab_bits)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A control thread state for `director` (whose current configuration must be empty).
    #[must_use]
    pub fn new(director: Arc<Director>, hooks: Hooks, conn_tab_bits: u8) -> Self {
        Self::with_names(director, hooks, conn_tab_bits, Names::system())
    }

    /// As [`Server::new`], resolving host and service names of `-R` input with `names`
    /// instead of the system's tables (tests and fuzzing: no resolver, no file read).
    #[must_use]
    pub fn with_names(
        director: Arc<Director>,
        hooks: Hooks,
        conn_tab_bits: u8,
        names: Names,
    ) -> Self {
        Self {
            config: Config::default(),
            director,
            hooks,
            conn_tab_bits,
            names,
        }
    }

    /// The configuration last applied.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn publish(&mut self, w: Work, zeros: &[Option<ServiceKey>]) -> Result<(), Errno> {
        let new = w.into_config();
        self.director.apply(&new).map_err(|_| Errno::ENOENT)?;
        self.config = new;
        for z in zeros {
            self.director.zero(z.as_ref());
        }
        Ok(())
    }

    /// Validate and apply one command. On error nothing changes.
    pub fn exec(&mut self, cmd: &Command) -> Result<(), ErrorReply> {
        let err = |e: Errno| ErrorReply {
            errno: Some(e),
            message: e.ipvs_strerror(cmd.op()).to_owned(),
        };
        let mut w = Work::from_config(&self.config);
        let mut zeros = Vec::new();
        apply_cmd(&mut w, cmd, &mut zeros).map_err(err)?;
        if matches!(cmd, Command::Zero(_)) {
            for z in &zeros {
                self.director.zero(z.as_ref());
            }
            return Ok(());
        }
        self.publish(w, &zeros).map_err(err)
    }

    /// Apply ipvsadm-save text (`-R`). The whole text is parsed first: a syntax error applies
    /// nothing. Then each command is applied to a working copy; a refused command is reported
    /// (ipvsadm's message) and skipped as ipvsadm skips it, unless `strict`, where any refusal
    /// applies nothing. The result is published as one snapshot. `exit_code` is ipvsadm's:
    /// the last command's status (0 or 255), or the syntax error's.
    pub fn restore(&mut self, prog: &str, text: &str, strict: bool) -> RestoreReport {
        let mut report = RestoreReport::default();
        let mut cmds: Vec<(usize, Command)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            report.lines += 1;
            let words = parse::restore_words(prog, line);
            if words.len() <= 1 {
                continue;
            }
            match parse::parse(&words, true, &self.names) {
                Action::Exec(c) => cmds.push((n + 1, c)),
                Action::Exit(e) => {
                    report.messages = vec![if e.code == 0 {
                        format!(
                            "{prog}: line {}: -h/-v are not supported in -R input\n",
                            n + 1
                        )
                    } else {
                        e.stderr
                    }];
                    report.error_lines = vec![n + 1];
                    report.exit_code = if e.code == 0 { 2 } else { e.code };
                    return report;
                }
                _ => {
                    report.messages = vec![format!(
                        "{prog}: line {}: listing commands are not supported in -R input\n",
                        n + 1
                    )];
                    report.error_lines = vec![n + 1];
                    report.exit_code = 2;
                    return report;
                }
            }
        }
        let mut w = Work::from_config(&self.config);
        let mut zeros = Vec::new();
        for (line, c) in &cmds {
            match apply_cmd(&mut w, c, &mut zeros) {
                Ok(()) => {
                    report.applied += 1;
                    report.exit_code = 0;
                }
                Err(e) => {
                    report
                        .messages
                        .push(format!("{}\n", e.ipvs_strerror(c.op())));
                    report.error_lines.push(*line);
                    report.exit_code = 255;
                }
            }
        }
        if strict && !report.messages.is_empty() {
            report.applied = 0;
            return report;
        }
        if let Err(e) = self.publish(w, &zeros) {
            report.messages.push(format!("{}\n", e.strerror()));
            report.exit_code = 255;
            report.applied = 0;
        }
        report
    }

    fn list_items(
        &self,
        service: Option<&SvcKey>,
        with_stats: bool,
    ) -> Result<Vec<ListItem>, ErrorReply> {
        let mut items = Vec::new();
        let only = match service {
            Some(k) => Some(k.to_service_key().ok_or_else(no_such_service)?),
            None => None,
        };
        let mut found = false;
        for s in &self.config.services {
            if only.is_some_and(|k| k != s.key) {
                continue;
            }
            found = true;
            let stats = if with_stats {
                self.director
                    .service_counters(&s.key)
                    .map(|c| stats64(&c))
                    .unwrap_or_default()
            } else {
                Stats64::default()
            };
            items.push(ListItem::Service(ServiceEntry {
                spec: service_spec(s),
                stats,
                laddrs: s.laddrs.clone(),
            }));
            for d in &s.dests {
                let c = self
                    .director
                    .dest_counters(&s.key, d.addr, d.port)
                    .unwrap_or_default();
                items.push(ListItem::Dest(DestEntry {
                    spec: dest_spec(d),
                    activeconns: c.activeconns,
                    inactconns: c.inactconns,
                    persistconns: c.persistconns,
                    stats: if with_stats {
                        stats64(&c.counters)
                    } else {
                        Stats64::default()
                    },
                }));
            }
        }
        if only.is_some() && !found {
            return Err(no_such_service());
        }
        Ok(items)
    }

    /// Answer one request; several frames for large listings. `pending` holds a connection's
    /// unfinished `-R` input.
    pub fn handle(&mut self, req: RequestBody, pending: &mut String) -> Vec<ResponseBody> {
        match req {
            RequestBody::Exec(cmd) => vec![match self.exec(&cmd) {
                Ok(()) => ResponseBody::Ok,
                Err(e) => ResponseBody::Error(e),
            }],
            RequestBody::GetInfo => vec![ResponseBody::Info {
                version_code: IPVS_VERSION_CODE,
                conn_tab_size: 1u32 << self.conn_tab_bits.min(31),
            }],
            RequestBody::GetTimeouts => {
                let t = self.config.timeouts;
                vec![ResponseBody::Timeouts {
                    tcp: t.tcp,
                    tcp_fin: t.tcp_fin,
                    udp: t.udp,
                }]
            }
            RequestBody::List { service, stats } => {
                match self.list_items(service.as_ref(), stats) {
                    Err(e) => vec![ResponseBody::Error(e)],
                    Ok(items) => chunked(items, LIST_CHUNK, |items, more| ResponseBody::List {
                        items,
                        more,
                    }),
                }
            }
            RequestBody::GetConns => {
                let rows = (self.hooks.conns)();
                chunked(rows, CONN_CHUNK, |rows, more| ResponseBody::Conns {
                    rows,
                    more,
                })
            }
            RequestBody::GetCounters => {
                let mut c = (self.hooks.counters)();
                (c.fds, c.rss_kib) = process_figures();
                vec![ResponseBody::Counters(Box::new(c))]
            }
            RequestBody::Restore { prog, chunk, last } => {
                if pending.len() + chunk.len() > MAX_RESTORE {
                    pending.clear();
                    return vec![ResponseBody::Error(ErrorReply {
                        errno: None,
                        message: format!("restore input larger than {MAX_RESTORE} bytes"),
                    })];
                }
                pending.push_str(&chunk);
                if !last {
                    return vec![ResponseBody::Ok];
                }
                let text = std::mem::take(pending);
                vec![ResponseBody::Restore(self.restore(&prog, &text, false))]
            }
        }
    }

    /// Serve one client until it closes, times out or sends an oversized frame. Frames are
    /// read without the lock; only answering a decoded request takes it, so a slow or silent
    /// client never stalls the others.
    pub fn serve_connection(server: &Mutex<Self>, mut s: UnixStream) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
        let mut pending = String::new();
        loop {
            let bytes = match proto::read_frame(&mut s) {
                Ok(b) => b,
                Err(ProtoError::TooLarge(n)) => {
                    let _ = proto::write_frame(
                        &mut s,
                        &Response::error(ProtoError::TooLarge(n).to_string()),
                    );
                    return;
                }
                Err(_) => return,
            };
            let req = match proto::decode_request(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    if proto::write_frame(&mut s, &Response::error(e.to_string())).is_err() {
                        return;
                    }
                    continue;
                }
            };
            let bodies = server
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .handle(req.body, &mut pending);
            for body in bodies {
                if proto::write_frame(&mut s, &Response::new(body)).is_err() {
                    return;
                }
            }
        }
    }

    /// Accept clients (each served on its own thread, at most [`MAX_CLIENTS`] at once) until
    /// `shutdown` is set (the setter then connects once to wake `accept`).
    pub fn serve(server: &Arc<Mutex<Self>>, listener: &UnixListener, shutdown: &AtomicBool) {
        let active = Arc::new(AtomicUsize::new(0));
        for stream in listener.incoming() {
            if shutdown.load(Ordering::SeqCst) {
                break;
            }
            match stream {
                Ok(mut s) => {
                    if active.load(Ordering::SeqCst) >= MAX_CLIENTS {
                        let _ = proto::write_frame(&mut s, &Response::error("too many clients"));
                        continue;
                    }
                    active.fetch_add(1, Ordering::SeqCst);
                    let server = Arc::clone(server);
                    let active2 = Arc::clone(&active);
                    let spawned = std::thread::Builder::new()
                        .name("xvsd-client".into())
                        .spawn(move || {
                            Self::serve_connection(&server, s);
                            active2.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        active.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("xvsd: accept: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

fn no_such_service() -> ErrorReply {
    ErrorReply {
        errno: Some(Errno::ESRCH),
        message: Errno::ESRCH.ipvs_strerror(Op::GetService).to_owned(),
    }
}

fn chunked<T>(
    all: Vec<T>,
    per: usize,
    mk: impl Fn(Vec<T>, bool) -> ResponseBody,
) -> Vec<ResponseBody> {
    let mut out = Vec::new();
    let mut it = all.into_iter().peekable();
    loop {
        let chunk: Vec<T> = it.by_ref().take(per).collect();
        let more = it.peek().is_some();
        out.push(mk(chunk, more));
        if !more {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn server() -> Server {
        Server::new(Arc::new(Director::new(1)), Hooks::default(), 12)
    }

    fn key(port: u16) -> SvcKey {
        SvcKey::Inet {
            proto: 6,
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port,
        }
    }

    fn svc(port: u16) -> ServiceSpec {
        ServiceSpec {
            key: key(port),
            sched_name: "rr".into(),
            flags: 0,
            timeout_s: 0,
            netmask: 0xffff_ffff,
            pe_name: None,
        }
    }

    fn dest(last: u8) -> DestSpec {
        DestSpec {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 1, last)),
            port: 80,
            fwd: Fwd::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: 0,
            tun_port: 0,
            tun_flags: 0,
        }
    }

    #[test]
    fn new_dests_go_to_the_head() {
        let mut s = server();
        s.exec(&Command::AddService(svc(80))).unwrap();
        for i in 1..=3 {
            s.exec(&Command::AddDest(key(80), dest(i))).unwrap();
        }
        let order: Vec<u8> = s.config().services[0]
            .dests
            .iter()
            .map(|d| match d.addr {
                IpAddr::V4(a) => a.octets()[3],
                IpAddr::V6(_) => 0,
            })
            .collect();
        assert_eq!(order, vec![3, 2, 1]);
        // Edit keeps the position.
        let mut d = dest(2);
        d.weight = 7;
        s.exec(&Command::EditDest(key(80), d)).unwrap();
        assert_eq!(s.config().services[0].dests[1].weight, 7);
        assert_eq!(s.director.snapshot().services[0].dests.len(), 3);
    }

    #[test]
    fn kernel_errnos() {
        let mut s = server();
        let e = |r: Result<(), ErrorReply>| r.unwrap_err().errno.unwrap();
        assert_eq!(e(s.exec(&Command::AddDest(key(80), dest(1)))), Errno::ESRCH);
        s.exec(&Command::AddService(svc(80))).unwrap();
        assert_eq!(e(s.exec(&Command::AddService(svc(80)))), Errno::EEXIST);
        let mut bad = svc(81);
        bad.sched_name = "nope".into();
        assert_eq!(e(s.exec(&Command::AddService(bad))), Errno::ENOENT);
        assert_eq!(
            e(s.exec(&Command::EditDest(key(80), dest(1)))),
            Errno::ENOENT
        );
        let mut d = dest(1);
        d.l_threshold = 5;
        assert_eq!(e(s.exec(&Command::AddDest(key(80), d))), Errno::ERANGE);
        let mut d = dest(1);
        d.addr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1));
        assert_eq!(e(s.exec(&Command::AddDest(key(80), d))), Errno::EINVAL);
        s.exec(&Command::AddDest(key(80), dest(1))).unwrap();
        let r = s.exec(&Command::AddDest(key(80), dest(1))).unwrap_err();
        assert_eq!(r.message, "Destination already exists");
        assert_eq!(e(s.exec(&Command::DelService(key(99)))), Errno::ESRCH);
        assert_eq!(e(s.exec(&Command::StartDaemon)), Errno::ENOSYS);
        assert_eq!(s.config().services.len(), 1);
    }

    #[test]
    fn restore_is_one_config_and_reports_like_ipvsadm() {
        let mut s = server();
        let text = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1 -m\n\
                    -A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.2 -m\n";
        let r = s.restore("ipvsadm", text, false);
        assert_eq!(r.messages, vec!["Service already exists\n".to_string()]);
        assert_eq!(r.exit_code, 0);
        assert_eq!(r.applied, 3);
        assert_eq!(s.config().services[0].dests.len(), 2);
        // A syntax error applies nothing.
        let r = s.restore("ipvsadm", "-A -t 10.0.0.2:80\n-A -t\n", false);
        assert_eq!(r.exit_code, 255);
        assert_eq!(s.config().services.len(), 1);
        // Strict: any refusal applies nothing.
        let r = s.restore("xvsd", "-A -t 10.0.0.3:80\n-D -t 10.0.0.9:80\n", true);
        assert_eq!(r.error_lines, vec![2]);
        assert_eq!(s.config().services.len(), 1);
    }

    #[test]
    fn listing_is_chunked() {
        let mut s = server();
        let mut text = String::new();
        for p in 1..=1000u16 {
            text.push_str(&format!("-A -t 10.0.0.1:{p} -s rr\n"));
            text.push_str(&format!("-a -t 10.0.0.1:{p} -r 10.0.1.1 -m\n"));
        }
        assert_eq!(s.restore("x", &text, true).exit_code, 0);
        let mut pending = String::new();
        let frames = s.handle(
            RequestBody::List {
                service: None,
                stats: true,
            },
            &mut pending,
        );
        assert_eq!(frames.len(), 2);
        assert!(matches!(frames[0], ResponseBody::List { more: true, .. }));
    }
}
