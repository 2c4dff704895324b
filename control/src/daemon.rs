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
