//! xvsd's control-plane part: options, the control socket, `--restore`, signals.
//!
//! The binary builds a [`Director`] (and, later, the workers) and calls [`run_control`], which
//! returns when SIGTERM or SIGINT arrives, after removing the socket. Call [`block_signals`]
//! first thing in `main`, before spawning any thread, so every thread inherits the blocked
//! mask and only the signal thread started here receives them.
//!
//! Socket: the parent directory is created (0755) if missing; a stale socket file is replaced,
//! a live one (another daemon answers) is an error; the socket is created under a umask so it
//! is never more open than 0600 (or 0660 with `--socket-group`, owned by that group).
//! Never: leave the socket file behind on a clean shutdown.
//!
//! `--user NAME`: once the AF_XDP sockets (opened by the runtime before [`run_control`]) and
//! the control socket exist, the daemon gives the socket to NAME, then switches every thread
//! to NAME's uid, gid and groups and sets no_new_privs. Nothing the data path does afterwards
//! needs a capability: the rings and the UMEM are mapped already, the TX kick (`sendto`) and
//! `poll` on an AF_XDP socket check none, and accepting on an existing listener checks none.
//! So no capability is kept (setuid from root clears the permitted, effective and ambient sets
//! of every thread, glibc applying it to all threads). The one thing lost is the detach of
//! libxdp's program at a clean exit (netlink, CAP_NET_ADMIN): it stays attached like after a
//! crash, and the next xvsd detaches it at start (see the AF_XDP backend's stale-program
//! reclaim). The socket's directory must let NAME in (and, for the socket to be removed at
//! exit, write); the daemon checks afterwards, through `/proc/self/task`, that no thread kept
//! root or a capability, and exits if one did.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::stat::{Mode, umask};
use xvs_dataplane::director::Director;

use crate::server::{Hooks, Server};

/// xvsd's control-plane options (flattened into the binary's clap parser).
#[derive(clap::Args, Debug, Clone)]
pub struct DaemonOpts {
    /// Control socket path.
    #[arg(long, default_value = crate::proto::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Group allowed to use the socket (mode 0660); without it the socket is 0600.
    #[arg(long, value_name = "NAME")]
    pub socket_group: Option<String>,
    /// Connection table size as a power of two (8..=20), shown as `(size=N)`.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u8).range(8..=20))]
    pub conn_tab_bits: u8,
    /// An ipvsadm-save file applied at start (validated whole first; any bad line: exit 1).
    #[arg(long, value_name = "FILE")]
    pub restore: Option<PathBuf>,
    /// After creating its sockets, run as this user (name or uid) with no capability.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// Who `--user` names: uid, primary gid and supplementary groups.
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
    groups: Vec<nix::unistd::Gid>,
}

fn lookup_user(name: &str) -> anyhow::Result<RunAs> {
    let user = if let Ok(n) = name.parse::<u32>() {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(n))
    } else {
        nix::unistd::User::from_name(name)
    };
    let user = match user {
        Ok(Some(u)) => u,
        Ok(None) => bail!("--user: no such user {name:?}"),
        Err(e) => bail!("--user: looking up {name:?}: {e}"),
    };
    if user.uid.is_root() {
        bail!("--user: {name:?} is root");
    }
    let cname = std::ffi::CString::new(user.name.clone())
        .with_context(|| format!("--user: bad name {name:?}"))?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid)
        .with_context(|| format!("--user: groups of {name:?}"))?;
    Ok(RunAs {
        name: user.name,
        uid: user.uid,
        gid: user.gid,
        groups,
    })
}

/// Give the control socket to `who`, then switch every thread to `who` for good.
fn drop_privileges(who: &RunAs, socket: &Path, keep_socket_group: bool) -> anyhow::Result<()> {
    let gid = (!keep_socket_group).then_some(who.gid.as_raw());
    std::os::unix::fs::chown(socket, Some(who.uid.as_raw()), gid)
        .with_context(|| format!("chown {} to {}", socket.display(), who.name))?;
    // Order matters: groups and gid need the privilege that setuid gives up.
    nix::unistd::setgroups(&who.groups).context("setgroups")?;
    nix::unistd::setgid(who.gid).context("setgid")?;
    nix::unistd::setuid(who.uid).context("setuid")?;
    if nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
        bail!("--user: could regain root after setuid");
    }
    // This thread's children could never gain privileges through execve (xvsd never execs;
    // defence in depth).
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    check_threads(who)
}

/// Every thread of the process runs as `who` with empty permitted, effective and ambient
/// capability sets (read from `/proc/self/task/*/status`).
fn check_threads(who: &RunAs) -> anyhow::Result<()> {
    let mut n = 0;
    for task in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        let path = task?.path().join("status");
        let Ok(status) = std::fs::read_to_string(&path) else {
            continue; // the thread has exited
        };
        n += 1;
        for line in status.lines() {
            let (key, val) = line.split_once(':').unwrap_or((line, ""));
            let vals: Vec<&str> = val.split_whitespace().collect();
            let bad = match key {
                "Uid" => vals.iter().any(|v| *v != who.uid.to_string()),
                "Gid" => vals.iter().any(|v| *v != who.gid.to_string()),
                "CapPrm" | "CapEff" | "CapAmb" => {
                    vals.iter().any(|v| !v.trim_start_matches('0').is_empty())
                }
                _ => false,
            };
            if bad {
                bail!("--user: {} still has {line}", path.display());
            }
        }
    }
    eprintln!(
        "xvsd: dropped privileges: {n} thread(s) run as {} (uid {}, gid {}) with no capability",
        who.name, who.uid, who.gid
    );
    Ok(())
}

fn term_signals() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGINT);
    s
}

/// Block SIGTERM and SIGINT in the calling thread (and so in threads it spawns later).
pub fn block_signals() -> anyhow::Result<()> {
    term_signals()
        .thread_block()
        .context("blocking SIGTERM/SIGINT")?;
    Ok(())
}

fn group_gid(name: &str) -> anyhow::Result<nix::unistd::Gid> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(nix::unistd::Gid::from_raw(n));
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => bail!("no such group {name:?}"),
        Err(e) => bail!("looking up group {name:?}: {e}"),
    }
}

/// Create the listening socket with the right mode and group.
pub fn bind_socket(path: &Path, group: Option<&str>) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!("{} is in use by a running daemon", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let gid = group.map(group_gid).transpose()?;
    let (mask, mode) = if gid.is_some() {
        (0o117, 0o660)
    } else {
        (0o177, 0o600)
    };
    let old = umask(Mode::from_bits_truncate(mask));
    let l = UnixListener::bind(path);
    umask(old);
    let l = l.with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(g) = gid {
        std::os::unix::fs::chown(path, None, Some(g.as_raw()))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(l)
}

/// Run the control plane until SIGTERM/SIGINT: apply `--restore`, listen on the socket, serve
/// ipvsadm commands against `director`. Returns after removing the socket.
pub fn run_control(opts: &DaemonOpts, director: Arc<Director>, hooks: Hooks) -> anyhow::Result<()> {
    block_signals()?;
    let run_as = opts.user.as_deref().map(lookup_user).transpose()?;
    let mut server = Server::new(director, hooks, opts.conn_tab_bits);
    if let Some(file) = &opts.restore {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let r = server.restore("xvsd", &text, true);
        if !r.messages.is_empty() || r.exit_code != 0 {
            for (m, l) in r.messages.iter().zip(&r.error_lines) {
                eprint!("xvsd: {}:{}: {}", file.display(), l, m);
            }
            bail!("{}: not applied", file.display());
        }
        eprintln!(
            "xvsd: restored {} commands from {}",
            r.applied,
            file.display()
        );
    }
    let listener = bind_socket(&opts.socket, opts.socket_group.as_deref())?;
    if let Some(who) = &run_as {
        drop_privileges(who, &opts.socket, opts.socket_group.is_some())?;
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    {
        let shutdown = Arc::clone(&shutdown);
        let path = opts.socket.clone();
        std::thread::Builder::new()
            .name("xvsd-signals".into())
            .spawn(move || {
                if let Ok(sig) = term_signals().wait() {
                    eprintln!("xvsd: {sig:?}: shutting down");
                }
                shutdown.store(true, Ordering::SeqCst);
                // Wake the accept loop.
                let _ = UnixStream::connect(&path);
            })
            .context("spawning the signal thread")?;
    }
    eprintln!(
        "xvsd: control socket {} (conn_tab_bits {})",
        opts.socket.display(),
        opts.conn_tab_bits
    );
    let server = Arc::new(Mutex::new(server));
    Server::serve(&server, &listener, &shutdown);
    drop(listener);
    let _ = std::fs::remove_file(&opts.socket);
    Ok(())
}
