//! xvsadm: the ipvsadm 1.31 command line against the xvsd control socket.
//!
//! [`parse`] turns an argument vector into an [`parse::Action`] exactly as ipvsadm's option
//! processing would (messages and exit statuses included); [`format`] prints listings to the
//! byte; [`names`] does the host/service name conversions; [`run`] ties them to a daemon
//! connection. The daemon is found by `--socket PATH` (an xvs option, accepted anywhere on the
//! line and removed before ipvsadm parsing), else `$XVS_SOCKET`, else `/run/xvs/xvs.sock`.
//!
//! Differences from ipvsadm, all deliberate: the daemon is contacted only when needed (`-h`,
//! `-v` and usage errors work without it); "Can't initialize ipvs" names the socket; `-R`
//! input is parsed whole before anything is applied (a syntax error applies nothing, where
//! ipvsadm would have applied the lines before it) and the accepted lines are published as one
//! snapshot; listing commands inside `-R` input are refused.
//! Never: panic on user input or on a daemon answer.

pub mod format;
pub mod names;
pub mod parse;

use std::io::Read;
use std::path::PathBuf;

use crate::proto::{
    Client, DestEntry, ListItem, ProtoError, RequestBody, ResponseBody, ServiceEntry,
};
use format::ServiceList;
use names::Names;
use parse::{Action, CliExit, ListWhat};

/// Largest piece of `-R` input sent in one frame (leaves room for the JSON envelope).
const RESTORE_CHUNK: usize = 900 * 1024;

/// Remove `--socket PATH` / `--socket=PATH` from `argv`; the chosen socket path.
#[must_use]
pub fn take_socket_arg(argv: &mut Vec<String>) -> PathBuf {
    let mut found: Option<String> = None;
    let mut i = 1;
    while i < argv.len() {
        if argv[i] == "--socket" && i + 1 < argv.len() {
            found = Some(argv.remove(i + 1));
            argv.remove(i);
        } else if let Some(p) = argv[i].strip_prefix("--socket=") {
            found = Some(p.to_owned());
            argv.remove(i);
        } else if argv[i] == "--" {
            break;
        } else {
            i += 1;
        }
    }
    found
        .or_else(|| std::env::var("XVS_SOCKET").ok())
        .map_or_else(
            || PathBuf::from(crate::proto::DEFAULT_SOCKET),
            PathBuf::from,
        )
}

/// Group a flat listing into services with their dests.
#[must_use]
pub fn group(items: Vec<ListItem>) -> ServiceList {
    let mut out: Vec<(ServiceEntry, Vec<DestEntry>)> = Vec::new();
    for it in items {
        match it {
            ListItem::Service(s) => out.push((s, Vec::new())),
            ListItem::Dest(d) => {
                if let Some(last) = out.last_mut() {
                    last.1.push(d);
                }
            }
        }
    }
    out
}

fn proto_fail(e: &ProtoError) -> CliExit {
    CliExit {
        code: 1,
        stdout: String::new(),
        stderr: format!("xvsd protocol error: {e}\n"),
    }
}

/// Run one xvsadm invocation: `argv` as given to the program (`argv[0]` included), `stdin` for
/// `-R`. Returns what to print and the exit status.
#[must_use]
pub fn run(mut argv: Vec<String>, stdin: &mut dyn Read) -> CliExit {
    let socket = take_socket_arg(&mut argv);
    let names = Names::system();
    let action = parse::parse(&argv, false, &names);
    if let Action::Exit(e) = action {
        return e;
    }
    let mut client = match Client::connect(&socket) {
        Ok(c) => c,
        Err(e) => {
            let err = match &e {
                ProtoError::Io(io) => strerror_of(io),
                other => other.to_string(),
            };
            return CliExit {
                code: 2,
                stdout: String::new(),
                stderr: format!(
                    "Can't initialize ipvs: {err}\nAre you sure that xvsd is running (control socket {})?\n",
                    socket.display()
                ),
            };
        }
    };
    let prog = argv.first().cloned().unwrap_or_else(|| "ipvsadm".into());
    match execute(&mut client, action, &prog, &names, stdin) {
        Ok(e) => e,
        Err(e) => proto_fail(&e),
    }
}

fn strerror_of(e: &std::io::Error) -> String {
    // std's Display appends " (os error N)"; ipvsadm prints the bare strerror text.
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn ok(stdout: String) -> CliExit {
    CliExit {
        code: 0,
        stdout,
        stderr: String::new(),
    }
}

fn execute(
    client: &mut Client,
    action: Action,
    prog: &str,
    names: &Names,
    stdin: &mut dyn Read,
) -> Result<CliExit, ProtoError> {
    match action {
        Action::Exit(e) => Ok(e),
        Action::Exec(cmd) => match client.call(RequestBody::Exec(cmd))? {
            ResponseBody::Ok => Ok(ok(String::new())),
            ResponseBody::Error(e) => Ok(CliExit {
                code: 255,
                stdout: String::new(),
                stderr: format!("{}\n", e.message),
            }),
            _ => Err(ProtoError::Unexpected),
        },
        Action::List { what, format, json } => match what {
            ListWhat::All => {
                let (code, size) = match client.call(RequestBody::GetInfo)? {
                    ResponseBody::Info {
                        version_code,
                        conn_tab_size,
                    } => (version_code, conn_tab_size),
                    _ => return Err(ProtoError::Unexpected),
                };
                let items = match client.list(
                    None,
                    format & (parse::fmt::STATS | parse::fmt::RATE) != 0 || json,
                )? {
                    Ok(i) => i,
                    Err(e) => return Ok(list_error(&e.message)),
                };
                let list = group(items);
                if json {
                    return Ok(ok(format::json_list(&list, format, Some((code, size)))));
                }
                let h = format::header(code, size);
                Ok(ok(format::list_all(&list, format, Some(&h), names)))
            }
            ListWhat::Service(k) => {
                let items = match client.list(
                    Some(k),
                    format & (parse::fmt::STATS | parse::fmt::RATE) != 0 || json,
                )? {
                    Ok(i) => i,
                    Err(e) => return Ok(list_error(&e.message)),
                };
                let list = group(items);
                if json {
                    return Ok(ok(format::json_list(&list, format, None)));
                }
                let mut out = format::title(format);
                for (se, ds) in &list {
                    format::service_entry(&mut out, se, ds, format, names);
                }
                Ok(ok(out))
            }
            ListWhat::Conns => {
                let rows = client.conns()?;
                if json {
                    let mut s = serde_json::to_string_pretty(&rows).unwrap_or_default();
                    s.push('\n');
                    return Ok(ok(s));
                }
                Ok(ok(format::conns(&rows, format, names)))
            }
            ListWhat::Timeout => match client.call(RequestBody::GetTimeouts)? {
                ResponseBody::Timeouts { tcp, tcp_fin, udp } => {
                    if json {
                        return Ok(ok(format!(
                            "{{\"tcp\":{tcp},\"tcpfin\":{tcp_fin},\"udp\":{udp}}}\n"
                        )));
                    }
                    Ok(ok(format::timeouts(tcp, tcp_fin, udp)))
                }
                _ => Err(ProtoError::Unexpected),
            },
            // No sync daemon ever runs: ipvsadm prints nothing then.
            ListWhat::Daemon => Ok(ok(if json { "[]\n".into() } else { String::new() })),
        },
        Action::Save { format } => {
            let items = match client.list(None, false)? {
                Ok(i) => i,
                Err(e) => return Ok(list_error(&e.message)),
            };
            Ok(ok(format::list_all(&group(items), format, None, names)))
        }
        Action::GetLaddr { service, format } => {
            let items = match client.list(service, false)? {
                Ok(i) => i,
                Err(e) => return Ok(list_error(&e.message)),
            };
            Ok(ok(format::laddrs(&group(items), format, names)))
        }
        Action::Counters { json } => match client.call(RequestBody::GetCounters)? {
            ResponseBody::Counters(c) => Ok(ok(if json {
                format::json_counters(&c)
            } else {
                format::counters(&c)
            })),
            ResponseBody::Error(e) => Ok(list_error(&e.message)),
            _ => Err(ProtoError::Unexpected),
        },
        Action::Restore => {
            let mut text = String::new();
            if let Err(e) = stdin.read_to_string(&mut text) {
                return Ok(CliExit::fail(format!("cannot read standard input: {e}")));
            }
            restore(client, prog, &text)
        }
    }
}

fn list_error(msg: &str) -> CliExit {
    CliExit {
        code: 1,
        stdout: String::new(),
        stderr: format!("{msg}\n"),
    }
}

/// Send `text` as `-R` input in chunks of whole lines; print what the daemon reports.
fn restore(client: &mut Client, prog: &str, text: &str) -> Result<CliExit, ProtoError> {
    let mut rest = text;
    loop {
        let mut cut = rest.len().min(RESTORE_CHUNK);
        if cut < rest.len() {
            match rest[..cut].rfind('\n') {
                Some(i) => cut = i + 1,
                None => {
                    return Ok(CliExit::fail("restore input line too long"));
                }
            }
        }
        let (chunk, tail) = rest.split_at(cut);
        let last = tail.is_empty();
        match client.call(RequestBody::Restore {
            prog: prog.to_owned(),
            chunk: chunk.to_owned(),
            last,
        })? {
            ResponseBody::Ok if !last => {}
            ResponseBody::Restore(r) => {
                return Ok(CliExit {
                    code: r.exit_code,
                    stdout: String::new(),
                    stderr: r.messages.concat(),
                });
            }
            ResponseBody::Error(e) => return Ok(list_error(&e.message)),
            _ => return Err(ProtoError::Unexpected),
        }
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_arg_is_removed() {
        let mut v: Vec<String> = ["xvsadm", "-L", "--socket", "/tmp/s", "-n"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(take_socket_arg(&mut v), PathBuf::from("/tmp/s"));
        assert_eq!(v, vec!["xvsadm", "-L", "-n"]);
        let mut v: Vec<String> = ["xvsadm", "--socket=/x", "-C"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(take_socket_arg(&mut v), PathBuf::from("/x"));
        assert_eq!(v, vec!["xvsadm", "-C"]);
    }
}
