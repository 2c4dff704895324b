//! The ipvsadm 1.31 command line, parsed as ipvsadm parses it.
//!
//! Why not clap (the design card's choice): ipvsadm's grammar is popt's, with behaviours clap
//! cannot reproduce without fighting it: the command must be the *first* option, short
//! options cluster with their argument (`-Lnc`, `-p600`, `-s=rr`), `-p` takes an optional
//! argument only when the next word does not start with `-`, string options take the next
//! word even if it starts with `-`, one shared argument variable makes option order matter
//! (`-r` before `-t` copies port 0), and every error has a fixed text and exit status. So this
//! module is a small popt emulation ([`Popt`]) feeding a transcription of ipvsadm's
//! `parse_options`/`process_options` checks: the command/option matrix, the tunnel-type matrix,
//! defaults (weight 1, `-g`, wlc, persistence 360 s, /32 mask), and every `fail()` message.
//!
//! Exit statuses as ipvsadm: `fail()` 2; popt errors and "Try ... -h" 255; `-h`/`-v` 0.
//! xvs additions (long options only): `--fullnat` (a forwarding method), `--add-laddr`,
//! `--del-laddr`, `--get-laddr` with `-z/--laddr ADDR` (FULLNAT local addresses, DPVS style)
//! and `--json` on `-L`.
//! Never: panic on any argument vector.

#![allow(
    clippy::cast_possible_truncation,
    reason = "every cast follows a string_to_number/strtol range check that makes it exact"
)]

use std::net::{IpAddr, Ipv4Addr};

use super::names::{Names, atoi, inet_aton, string_to_number, strtol_full};
use crate::proto::{Command, DestSpec, Fwd, ServiceSpec, SvcKey, tun_type};

/// Default scheduler.
pub const DEF_SCHED: &str = "wlc";
/// Default persistence timeout (`IPVS_SVC_PERSISTENT_TIMEOUT`).
pub const PERSISTENT_TIMEOUT: u32 = 6 * 60;
/// Largest timeout ipvsadm accepts (31 days).
pub const MAX_TIMEOUT: i64 = 86400 * 31;

/// A program exit decided while parsing: what to print and the status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CliExit {
    /// Exit status.
    pub code: i32,
    /// Text for stdout.
    pub stdout: String,
    /// Text for stderr.
    pub stderr: String,
}

impl CliExit {
    /// ipvsadm's `fail(2, msg)`.
    #[must_use]
    pub fn fail(msg: impl Into<String>) -> Self {
        let mut stderr = msg.into();
        stderr.push('\n');
        Self {
            code: 2,
            stdout: String::new(),
            stderr,
        }
    }

    /// `tryhelp_exit(program, -1)`.
    #[must_use]
    pub fn tryhelp(prog: &str) -> Self {
        Self {
            code: 255,
            stdout: String::new(),
            stderr: format!("Try `{prog} -h' or '{prog} --help' for more information.\n"),
        }
    }
}

// Commands (ipvsadm's CMD_* minus one, then the xvs additions).
/// The commands, in ipvsadm's order (`cmdnames`), then xvs's.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// -A
    Add = 0,
    /// -E
    Edit,
    /// -D
    Del,
    /// -C
    Flush,
    /// -L
    List,
    /// -a
    AddDest,
    /// -d
    DelDest,
    /// -e
    EditDest,
    /// --set
    Timeout,
    /// --start-daemon
    StartDaemon,
    /// --stop-daemon
    StopDaemon,
    /// -R
    Restore,
    /// -S
    Save,
    /// -Z
    Zero,
    /// --add-laddr
    AddLaddr,
    /// --del-laddr
    DelLaddr,
    /// --get-laddr
    GetLaddr,
    /// --counters
    Counters,
}

const CMDNAMES: [&str; 18] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
    "add-laddr",
    "delete-laddr",
    "get-laddr",
    "counters",
];

/// Option indexes (ipvsadm's OPTC_*, then xvs's).
pub mod optc {
    #![allow(missing_docs)]
    pub const NUMERIC: usize = 0;
    pub const CONNECTION: usize = 1;
    pub const SERVICE: usize = 2;
    pub const SCHEDULER: usize = 3;
    pub const PERSISTENT: usize = 4;
    pub const NETMASK: usize = 5;
    pub const SERVER: usize = 6;
    pub const FORWARD: usize = 7;
    pub const WEIGHT: usize = 8;
    pub const UTHRESHOLD: usize = 9;
    pub const LTHRESHOLD: usize = 10;
    pub const MCAST: usize = 11;
    pub const TIMEOUT: usize = 12;
    pub const DAEMON: usize = 13;
    pub const STATS: usize = 14;
    pub const RATE: usize = 15;
    pub const THRESHOLDS: usize = 16;
    pub const PERSISTENTCONN: usize = 17;
    pub const NOSORT: usize = 18;
    pub const SYNCID: usize = 19;
    pub const EXACT: usize = 20;
    pub const ONEPACKET: usize = 21;
    pub const PE: usize = 22;
    pub const SCHED_FLAGS: usize = 23;
    pub const MCAST_GROUP: usize = 24;
    pub const MCAST_PORT: usize = 25;
    pub const MCAST_TTL: usize = 26;
    pub const SYNC_MAXLEN: usize = 27;
    pub const TUN_INFO: usize = 28;
    pub const TUN_TYPE: usize = 29;
    pub const TUN_PORT: usize = 30;
    pub const TUN_NOCSUM: usize = 31;
    pub const TUN_CSUM: usize = 32;
    pub const TUN_REMCSUM: usize = 33;
    pub const LADDR: usize = 34;
    pub const JSON: usize = 35;
    pub const COUNT: usize = 36;
}

const OPTNAMES: [&str; optc::COUNT] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
    "laddr",
    "json",
];

// ipvsadm's commands_v_options, transcribed column for column; the last two columns (laddr,
// json) and the last four rows are xvs's.
//  -n   -c   svc  -s   -p   -M   -r   fwd  -w   -x   -y   -mc  tot  dmn  -st  -rt  thr  -pc  srt  sid  -ex  ops  -pe  -b   grp  port ttl  size tinf type tprt nocs csum remc lad  json
const MATRIX: [&[u8; optc::COUNT]; 18] = [
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx", // ADD
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxxx", // EDIT
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // DEL
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // FLUSH
    b" 11xxxxxxxxx11       xxxxxxx xxxxxx ", // LIST
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     xx", // ADDSRV
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // DELSRV
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     xx", // EDITSRV
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // TIMEOUT
    b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxx", // STARTD
    b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxx", // STOPD
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // RESTORE
    b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // SAVE
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // ZERO
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+x", // ADDLADDR
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+x", // DELLADDR
    b" x xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // GETLADDR
    b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx ", // COUNTERS
];

const TUNNAMES: [&str; 3] = ["ipip", "gue", "gre"];
const TUNOPTS: [usize; 4] = [
    optc::TUN_PORT,
    optc::TUN_NOCSUM,
    optc::TUN_CSUM,
    optc::TUN_REMCSUM,
];
//  tprt nocs csum remc
const TUN_MATRIX: [&[u8; 4]; 3] = [b"xxxx", b"+111", b"x11x"];

/// Printing format flags (ipvsadm's FMT_*).
pub mod fmt {
    #![allow(missing_docs)]
    pub const NUMERIC: u32 = 0x0001;
    pub const RULE: u32 = 0x0002;
    pub const STATS: u32 = 0x0004;
    pub const RATE: u32 = 0x0008;
    pub const THRESHOLDS: u32 = 0x0010;
    pub const PERSISTENTCONN: u32 = 0x0020;
    pub const NOSORT: u32 = 0x0040;
    pub const EXACT: u32 = 0x0080;
    pub const TUN_INFO: u32 = 0x0100;
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Tag {
    CmdA,
    CmdE,
    CmdD,
    CmdC,
    CmdL,
    CmdZ,
    Cmda,
    Cmde,
    Cmdd,
    Set,
    Help,
    Version,
    CmdR,
    CmdS,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Sched,
    Persistent,
    Netmask,
    Real,
    Masq,
    Ipip,
    Gate,
    Weight,
    UThr,
    LThr,
    Numeric,
    Connection,
    McastIf,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    FullNat,
    AddLaddr,
    DelLaddr,
    GetLaddr,
    Laddr,
    Json,
    Counters,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Arg {
    None,
    Str,
    OptStr,
}

struct OptDef {
    long: &'static str,
    short: Option<u8>,
    arg: Arg,
    tag: Tag,
}

const fn o(long: &'static str, short: u8, arg: Arg, tag: Tag) -> OptDef {
    OptDef {
        long,
        short: if short == 0 { None } else { Some(short) },
        arg,
        tag,
    }
}

// ipvsadm's popt table, in its order (the first match wins, as popt's findOption).
const TABLE: &[OptDef] = &[
    o("add-service", b'A', Arg::None, Tag::CmdA),
    o("edit-service", b'E', Arg::None, Tag::CmdE),
    o("delete-service", b'D', Arg::None, Tag::CmdD),
    o("clear", b'C', Arg::None, Tag::CmdC),
    o("list", b'L', Arg::None, Tag::CmdL),
    o("list", b'l', Arg::None, Tag::CmdL),
    o("zero", b'Z', Arg::None, Tag::CmdZ),
    o("add-server", b'a', Arg::None, Tag::Cmda),
    o("edit-server", b'e', Arg::None, Tag::Cmde),
    o("delete-server", b'd', Arg::None, Tag::Cmdd),
    o("set", 0, Arg::None, Tag::Set),
    o("help", b'h', Arg::None, Tag::Help),
    o("version", b'v', Arg::None, Tag::Version),
    o("restore", b'R', Arg::None, Tag::CmdR),
    o("save", b'S', Arg::None, Tag::CmdS),
    o("start-daemon", 0, Arg::Str, Tag::StartDaemon),
    o("stop-daemon", 0, Arg::Str, Tag::StopDaemon),
    o("tcp-service", b't', Arg::Str, Tag::Tcp),
    o("udp-service", b'u', Arg::Str, Tag::Udp),
    o("sctp-service", 0, Arg::Str, Tag::Sctp),
    o("fwmark-service", b'f', Arg::Str, Tag::Fwmark),
    o("scheduler", b's', Arg::Str, Tag::Sched),
    o("persistent", b'p', Arg::OptStr, Tag::Persistent),
    o("netmask", b'M', Arg::Str, Tag::Netmask),
    o("real-server", b'r', Arg::Str, Tag::Real),
    o("masquerading", b'm', Arg::None, Tag::Masq),
    o("ipip", b'i', Arg::None, Tag::Ipip),
    o("gatewaying", b'g', Arg::None, Tag::Gate),
    o("weight", b'w', Arg::Str, Tag::Weight),
    o("u-threshold", b'x', Arg::Str, Tag::UThr),
    o("l-threshold", b'y', Arg::Str, Tag::LThr),
    o("numeric", b'n', Arg::None, Tag::Numeric),
    o("connection", b'c', Arg::None, Tag::Connection),
    o("mcast-interface", 0, Arg::Str, Tag::McastIf),
    o("syncid", 0, Arg::Str, Tag::SyncId),
    o("timeout", 0, Arg::None, Tag::Timeout),
    o("daemon", 0, Arg::None, Tag::Daemon),
    o("stats", 0, Arg::None, Tag::Stats),
    o("rate", 0, Arg::None, Tag::Rate),
    o("thresholds", 0, Arg::None, Tag::Thresholds),
    o("persistent-conn", 0, Arg::None, Tag::PersistentConn),
    o("nosort", 0, Arg::None, Tag::NoSort),
    o("sort", 0, Arg::None, Tag::Sort),
    o("exact", b'X', Arg::None, Tag::Exact),
    o("ipv6", b'6', Arg::None, Tag::Ipv6),
    o("ops", b'o', Arg::None, Tag::Ops),
    o("pe", 0, Arg::Str, Tag::Pe),
    o("sched-flags", b'b', Arg::Str, Tag::SchedFlags),
    o("mcast-group", 0, Arg::Str, Tag::McastGroup),
    o("mcast-port", 0, Arg::Str, Tag::McastPort),
    o("mcast-ttl", 0, Arg::Str, Tag::McastTtl),
    o("sync-maxlen", 0, Arg::Str, Tag::SyncMaxlen),
    o("tun-info", 0, Arg::None, Tag::TunInfo),
    o("tun-type", 0, Arg::Str, Tag::TunType),
    o("tun-port", 0, Arg::Str, Tag::TunPort),
    o("tun-nocsum", 0, Arg::None, Tag::TunNocsum),
    o("tun-csum", 0, Arg::None, Tag::TunCsum),
    o("tun-remcsum", 0, Arg::None, Tag::TunRemcsum),
    // xvs additions.
    o("fullnat", 0, Arg::None, Tag::FullNat),
    o("add-laddr", 0, Arg::None, Tag::AddLaddr),
    o("del-laddr", 0, Arg::None, Tag::DelLaddr),
    o("get-laddr", 0, Arg::None, Tag::GetLaddr),
    o("laddr", b'z', Arg::Str, Tag::Laddr),
    o("json", 0, Arg::None, Tag::Json),
    o("counters", 0, Arg::None, Tag::Counters),
];

/// A popt error: code text and the offending argv element.
#[derive(Debug)]
struct PoptErr {
    bad: String,
    what: &'static str,
}

/// A minimal popt: the subset of `poptGetNextOpt` behaviour ipvsadm's table exercises.
struct Popt<'a> {
    argv: &'a [String],
    next: usize,
    next_char_arg: Option<String>,
    rest_leftover: bool,
    leftovers: Vec<String>,
    leftover_pos: usize,
}

impl<'a> Popt<'a> {
    fn new(argv: &'a [String]) -> Self {
        Self {
            argv,
            next: 1,
            next_char_arg: None,
            rest_leftover: false,
            leftovers: Vec::new(),
            leftover_pos: 0,
        }
    }

    fn bad(&self, what: &'static str) -> PoptErr {
        PoptErr {
            bad: self
                .argv
                .get(self.next.wrapping_sub(1))
                .cloned()
                .unwrap_or_default(),
            what,
        }
    }

    /// The next option and its argument; `None` at the end.
    fn next_opt(&mut self) -> Option<Result<(Tag, Option<String>), PoptErr>> {
        let (opt, long_arg) = loop {
            if let Some(rest) = self.next_char_arg.take() {
                let mut chars = rest.chars();
                let Some(c) = chars.next() else {
                    return Some(Err(self.bad("unknown option")));
                };
                let Some(opt) = TABLE.iter().find(|d| d.short.map(char::from) == Some(c)) else {
                    return Some(Err(self.bad("unknown option")));
                };
                let tail = chars.as_str();
                if !tail.is_empty() {
                    self.next_char_arg = Some(tail.strip_prefix('=').unwrap_or(tail).to_owned());
                }
                break (opt, None);
            }
            let arg = self.argv.get(self.next)?;
            self.next += 1;
            if self.rest_leftover || !arg.starts_with('-') || arg == "-" {
                self.leftovers.push(arg.clone());
                continue;
            }
            if arg == "--" {
                self.rest_leftover = true;
                continue;
            }
            if let Some(long) = arg.strip_prefix("--") {
                let (name, la) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (long, None),
                };
                let Some(opt) = TABLE.iter().find(|d| d.long == name) else {
                    return Some(Err(self.bad("unknown option")));
                };
                break (opt, la);
            }
            self.next_char_arg = Some(arg[1..].to_owned());
        };
        let value = match opt.arg {
            Arg::None => {
                if long_arg.is_some() {
                    return Some(Err(self.bad("option does not take an argument")));
                }
                None
            }
            Arg::Str | Arg::OptStr => {
                if long_arg.is_some() {
                    long_arg
                } else if let Some(a) = self.next_char_arg.take() {
                    Some(a)
                } else if let Some(n) = self.argv.get(self.next) {
                    if opt.arg == Arg::OptStr && n.starts_with('-') {
                        None
                    } else {
                        self.next += 1;
                        Some(n.clone())
                    }
                } else if opt.arg == Arg::OptStr {
                    None
                } else {
                    return Some(Err(self.bad("missing argument")));
                }
            }
        };
        Some(Ok((opt.tag, value)))
    }

    /// `poptGetArg`: the next leftover argument. Call only after options are exhausted.
    fn next_arg(&mut self) -> Option<String> {
        // Leftovers are collected while scanning; drain any remaining argv first.
        while let Some(a) = self.argv.get(self.next) {
            self.leftovers.push(a.clone());
            self.next += 1;
        }
        let a = self.leftovers.get(self.leftover_pos).cloned();
        self.leftover_pos += 1;
        a
    }
}

/// Address family as ipvsadm keeps it (0 until set).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Af {
    /// Not set yet.
    #[default]
    Unspec,
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// ipvsadm's `ipvs_service_t` while parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvcUser {
    /// Address family.
    pub af: Af,
    /// IP protocol.
    pub protocol: u8,
    /// Address (unspecified until set).
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Firewall mark.
    pub fwmark: u32,
    /// Scheduler.
    pub sched_name: String,
    /// Flags.
    pub flags: u32,
    /// Persistence timeout.
    pub timeout: u32,
    /// IPv4 mask (host order) or IPv6 prefix length.
    pub netmask: u32,
    /// Persistence engine.
    pub pe_name: String,
}

/// ipvsadm's `ipvs_dest_t` while parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestUser {
    /// Address family.
    pub af: Af,
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Forwarding method.
    pub fwd: Fwd,
    /// Weight.
    pub weight: i32,
    /// Upper threshold.
    pub u_threshold: u32,
    /// Lower threshold.
    pub l_threshold: u32,
    /// Tunnel type.
    pub tun_type: u8,
    /// GUE port.
    pub tun_port: u16,
    /// Tunnel flags.
    pub tun_flags: u16,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Print and exit (help, version, errors).
    Exit(CliExit),
    /// `-L`/`-l` (also no arguments at all).
    List {
        /// What to list.
        what: ListWhat,
        /// FMT_* flags.
        format: u32,
        /// `--json`.
        json: bool,
    },
    /// `-S`.
    Save {
        /// FMT_* flags (RULE set).
        format: u32,
    },
    /// `-R`.
    Restore,
    /// A configuration change.
    Exec(Command),
    /// `--get-laddr`.
    GetLaddr {
        /// One service.
        service: Option<SvcKey>,
        /// FMT_* flags.
        format: u32,
    },
    /// `--counters` (an xvs addition): data-plane counters.
    Counters {
        /// `--json`.
        json: bool,
    },
}

/// What `-L` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListWhat {
    /// Everything, with the header line.
    All,
    /// One service.
    Service(SvcKey),
    /// `-c`.
    Conns,
    /// `--timeout`.
    Timeout,
    /// `--daemon`.
    Daemon,
}

const SERVICE_ADDR: u8 = 1;
const SERVICE_PORT: u8 = 2;

fn str_is_digit(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_digit())
}

/// ipvsadm's `parse_service`: `host[:port]`, `[v6]:port` or a bare IPv6 address. Returns the
/// SERVICE_ADDR | SERVICE_PORT bits (0 on failure; fields may be partly written, as in C).
fn parse_service(buf: &str, svc: &mut SvcUser, names: &Names) -> u8 {
    if str_is_digit(buf) {
        return 0;
    }
    let mut buf = buf;
    let mut portp: Option<&str> = None;
    if let Some(rest) = buf.strip_prefix('[') {
        let Some((a, p)) = rest.split_once(']') else {
            return 0;
        };
        let Some(p) = p.strip_prefix(':') else {
            return 0;
        };
        buf = a;
        portp = Some(p);
    }
    if let Ok(a6) = buf.parse::<std::net::Ipv6Addr>() {
        svc.addr = IpAddr::V6(a6);
        svc.af = Af::V6;
        svc.netmask = 128;
    } else {
        let host = match buf.rfind(':') {
            Some(i) => {
                portp = Some(&buf[i + 1..]);
                &buf[..i]
            }
            None => buf,
        };
        if let Some(a) = inet_aton(host).or_else(|| names.host_to_addr(host)) {
            svc.addr = IpAddr::V4(a);
            svc.af = Af::V4;
        } else {
            return 0;
        }
    }
    let mut result = SERVICE_ADDR;
    if let Some(p) = portp {
        result |= SERVICE_PORT;
        if let Some(n) = string_to_number(p, 0, 65535) {
            svc.port = n as u16;
        } else if let Some(n) = names.service_to_port(p, svc.protocol) {
            svc.port = n;
        } else {
            return 0;
        }
    }
    result
}

fn parse_sched_flags(sched: &str, arg: &str) -> Result<u32, CliExit> {
    use xvs_dataplane::service::svc_flags::{SCHED1, SCHED2, SCHED3};
    let sched = if sched.is_empty() { DEF_SCHED } else { sched };
    let mut flags = 0;
    let mut any = false;
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        any = true;
        let (bit, only) = match flag {
            "flag-1" => (SCHED1, None),
            "flag-2" => (SCHED2, None),
            "flag-3" => (SCHED3, None),
            "sh-fallback" => (SCHED1, Some("sh")),
            "sh-port" => (SCHED2, Some("sh")),
            "mh-fallback" => (SCHED1, Some("mh")),
            "mh-port" => (SCHED2, Some("mh")),
            _ => return Err(CliExit::fail(format!("invalid scheduler flag `{flag}'"))),
        };
        flags |= bit;
        if only.is_some_and(|s| s != sched) {
            return Err(CliExit::fail(format!(
                "incompatible scheduler flag `{flag}'"
            )));
        }
    }
    if !any {
        return Err(CliExit::fail("invalid scheduler flag `'"));
    }
    Ok(flags)
}

fn parse_timeout(buf: Option<&str>, min: i64, max: i64) -> Result<u32, CliExit> {
    let Some(buf) = buf else {
        return Ok(PERSISTENT_TIMEOUT);
    };
    string_to_number(buf, min, max)
        .map(|n| n as u32)
        .ok_or_else(|| CliExit::fail(format!("invalid timeout value `{buf}' specified")))
}

fn parse_fwmark(buf: &str) -> Result<u32, CliExit> {
    strtol_full(buf)
        .filter(|&l| l > 0 && l <= i64::from(u32::MAX))
        .map(|l| l as u32)
        .ok_or_else(|| CliExit::fail(format!("invalid fwmark value `{buf}' specified")))
}

struct State {
    cmd: Option<Cmd>,
    options: u64,
    format: u32,
    svc: SvcUser,
    dest: DestUser,
    timeouts: (u32, u32, u32),
    laddr: Option<IpAddr>,
    json: bool,
}

fn set_command(st: &mut State, c: Cmd) -> Result<(), CliExit> {
    if st.cmd.is_some() {
        return Err(CliExit::fail("multiple commands specified"));
    }
    st.cmd = Some(c);
    Ok(())
}

fn set_option(st: &mut State, optc: usize) -> Result<(), CliExit> {
    let bit = 1u64 << optc;
    if st.options & bit != 0 {
        return Err(CliExit::fail(format!(
            "multiple '{}' options specified",
            OPTNAMES[optc]
        )));
    }
    st.options |= bit;
    Ok(())
}

fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), CliExit> {
    let i = cmd as usize;
    let row = MATRIX[i];
    let mut last = 0;
    let mut count = 0;
    for j in 0..optc::COUNT {
        if options & (1u64 << j) == 0 {
            if row[j] == b'+' {
                return Err(CliExit::fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPTNAMES[j], CMDNAMES[i]
                )));
            }
        } else {
            if row[j] == b'x' {
                return Err(CliExit::fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPTNAMES[j], CMDNAMES[i]
                )));
            }
            if row[j] == b'1' {
                count += 1;
                if count == 1 {
                    last = j;
                    continue;
                }
                return Err(CliExit::fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' command",
                    OPTNAMES[j], OPTNAMES[last], CMDNAMES[i]
                )));
            }
        }
    }
    Ok(())
}

fn tunnel_opt_check(tun_type: u8, options: u64) -> Result<(), CliExit> {
    let i = usize::from(tun_type).min(2);
    let mut last = 0;
    let mut count = 0;
    for (j, &k) in TUNOPTS.iter().enumerate() {
        let m = TUN_MATRIX[i][j];
        if options & (1u64 << k) == 0 {
            if m == b'+' {
                return Err(CliExit::fail(format!(
                    "You need to supply the '{}' option for the '{}' tunnel type",
                    OPTNAMES[k], TUNNAMES[i]
                )));
            }
        } else {
            if m == b'x' {
                return Err(CliExit::fail(format!(
                    "Illegal '{}' option with the '{}' tunnel type",
                    OPTNAMES[k], TUNNAMES[i]
                )));
            }
            if m == b'1' {
                count += 1;
                if count == 1 {
                    last = k;
                    continue;
                }
                return Err(CliExit::fail(format!(
                    "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                    OPTNAMES[k], OPTNAMES[last], TUNNAMES[i]
                )));
            }
        }
    }
    Ok(())
}

fn svc_key(svc: &SvcUser) -> SvcKey {
    if svc.fwmark != 0 {
        SvcKey::Fwmark {
            v6: svc.af == Af::V6,
            mark: svc.fwmark,
        }
    } else {
        SvcKey::Inet {
            proto: svc.protocol,
            addr: svc.addr,
            port: svc.port,
        }
    }
}

/// Parse an ipvsadm command line (`argv[0]` included). `reading_stdin` is set for the lines of
/// `-R` input (a `-R` there is refused as ipvsadm refuses it).
#[must_use]
pub fn parse(argv: &[String], reading_stdin: bool, names: &Names) -> Action {
    match parse_inner(argv, reading_stdin, names) {
        Ok(a) => a,
        Err(e) => Action::Exit(e),
    }
}

#[allow(clippy::too_many_lines)]
fn parse_inner(argv: &[String], reading_stdin: bool, names: &Names) -> Result<Action, CliExit> {
    let prog = argv.first().map_or("ipvsadm", String::as_str);
    if argv.len() <= 1 {
        return Ok(Action::List {
            what: ListWhat::All,
            format: 0,
            json: false,
        });
    }
    let mut st = State {
        cmd: None,
        options: 0,
        format: 0,
        svc: SvcUser {
            af: Af::Unspec,
            protocol: 0,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            fwmark: 0,
            sched_name: String::new(),
            flags: 0,
            timeout: 0,
            netmask: 0xffff_ffff,
            pe_name: String::new(),
        },
        dest: DestUser {
            af: Af::Unspec,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            fwd: Fwd::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: tun_type::IPIP,
            tun_port: 0,
            tun_flags: 0,
        },
        timeouts: (0, 0, 0),
        laddr: None,
        json: false,
    };
    let mut popt = Popt::new(argv);
    let mut sched_flags_arg = String::new();

    let first = match popt.next_opt() {
        Some(Ok(x)) => x,
        _ => return Err(CliExit::tryhelp(prog)),
    };
    match first.0 {
        Tag::CmdA => set_command(&mut st, Cmd::Add)?,
        Tag::CmdE => set_command(&mut st, Cmd::Edit)?,
        Tag::CmdD => set_command(&mut st, Cmd::Del)?,
        Tag::Cmda => set_command(&mut st, Cmd::AddDest)?,
        Tag::Cmde => set_command(&mut st, Cmd::EditDest)?,
        Tag::Cmdd => set_command(&mut st, Cmd::DelDest)?,
        Tag::CmdC => set_command(&mut st, Cmd::Flush)?,
        Tag::CmdL => set_command(&mut st, Cmd::List)?,
        Tag::CmdZ => set_command(&mut st, Cmd::Zero)?,
        Tag::Set => set_command(&mut st, Cmd::Timeout)?,
        Tag::CmdR => set_command(&mut st, Cmd::Restore)?,
        Tag::CmdS => set_command(&mut st, Cmd::Save)?,
        Tag::AddLaddr => set_command(&mut st, Cmd::AddLaddr)?,
        Tag::DelLaddr => set_command(&mut st, Cmd::DelLaddr)?,
        Tag::GetLaddr => set_command(&mut st, Cmd::GetLaddr)?,
        Tag::Counters => set_command(&mut st, Cmd::Counters)?,
        Tag::StartDaemon | Tag::StopDaemon => {
            let start = first.0 == Tag::StartDaemon;
            set_command(
                &mut st,
                if start {
                    Cmd::StartDaemon
                } else {
                    Cmd::StopDaemon
                },
            )?;
            let v = first.1.as_deref().unwrap_or("");
            if v != "master" && v != "backup" {
                return Err(CliExit::fail(if start {
                    "illegal start-daemon parameter specified"
                } else {
                    "illegal start_daemon specified"
                }));
            }
        }
        Tag::Help => {
            return Ok(Action::Exit(CliExit {
                code: 0,
                stdout: super::format::usage(prog),
                stderr: String::new(),
            }));
        }
        Tag::Version => {
            return Ok(Action::Exit(CliExit {
                code: 0,
                stdout: super::format::version_line(),
                stderr: String::new(),
            }));
        }
        _ => return Err(CliExit::tryhelp(prog)),
    }

    loop {
        let (tag, optarg) = match popt.next_opt() {
            None => break,
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                return Err(CliExit {
                    code: 255,
                    stdout: String::new(),
                    stderr: format!("{}: {}\n", e.bad, e.what),
                });
            }
        };
        let arg = optarg.as_deref();
        let a = arg.unwrap_or("");
        match tag {
            Tag::Tcp | Tag::Udp | Tag::Sctp => {
                set_option(&mut st, optc::SERVICE)?;
                st.svc.protocol = match tag {
                    Tag::Tcp => 6,
                    Tag::Udp => 17,
                    _ => 132,
                };
                if parse_service(a, &mut st.svc, names) & SERVICE_ADDR == 0 {
                    return Err(CliExit::fail(
                        "illegal virtual server address[:port] specified",
                    ));
                }
            }
            Tag::Fwmark => {
                set_option(&mut st, optc::SERVICE)?;
                st.svc.af = Af::V4;
                st.svc.protocol = 6;
                st.svc.fwmark = parse_fwmark(a)?;
            }
            Tag::Sched => {
                set_option(&mut st, optc::SCHEDULER)?;
                st.svc.sched_name = a.chars().take(15).collect();
            }
            Tag::Persistent => {
                set_option(&mut st, optc::PERSISTENT)?;
                st.svc.flags |= xvs_dataplane::service::svc_flags::PERSISTENT;
                st.svc.timeout = parse_timeout(arg, 1, MAX_TIMEOUT)?;
            }
            Tag::Netmask => {
                set_option(&mut st, optc::NETMASK)?;
                if st.svc.af != Af::V6 {
                    match inet_aton(a).or_else(|| names.host_to_addr(a)) {
                        Some(m) => st.svc.netmask = u32::from(m),
                        None => {
                            return Err(CliExit::fail(
                                "illegal virtual server persistent mask specified",
                            ));
                        }
                    }
                } else {
                    let m = atoi(a);
                    if !(1..=128).contains(&m) {
                        return Err(CliExit::fail("illegal ipv6 netmask specified"));
                    }
                    st.svc.netmask = m as u32;
                }
            }
            Tag::Real => {
                set_option(&mut st, optc::SERVER)?;
                let mut t = st.svc.clone();
                let parse = parse_service(a, &mut t, names);
                st.dest.af = t.af;
                st.dest.addr = t.addr;
                st.dest.port = t.port;
                if parse & SERVICE_ADDR == 0 {
                    return Err(CliExit::fail(
                        "illegal real server address[:port] specified",
                    ));
                }
                if parse == SERVICE_ADDR {
                    st.dest.port = st.svc.port;
                }
            }
            Tag::Ipip | Tag::Gate | Tag::Masq | Tag::FullNat => {
                set_option(&mut st, optc::FORWARD)?;
                st.dest.fwd = match tag {
                    Tag::Ipip => Fwd::Tunnel,
                    Tag::Gate => Fwd::Route,
                    Tag::Masq => Fwd::Masq,
                    _ => Fwd::FullNat,
                };
            }
            Tag::Weight => {
                set_option(&mut st, optc::WEIGHT)?;
                st.dest.weight = string_to_number(a, 0, 65535)
                    .ok_or_else(|| CliExit::fail("illegal weight specified"))?
                    as i32;
            }
            Tag::UThr => {
                set_option(&mut st, optc::UTHRESHOLD)?;
                st.dest.u_threshold = string_to_number(a, 0, i64::from(i32::MAX))
                    .ok_or_else(|| CliExit::fail("illegal u_threshold specified"))?
                    as u32;
            }
            Tag::LThr => {
                set_option(&mut st, optc::LTHRESHOLD)?;
                st.dest.l_threshold = string_to_number(a, 0, i64::from(i32::MAX))
                    .ok_or_else(|| CliExit::fail("illegal l_threshold specified"))?
                    as u32;
            }
            Tag::Connection => set_option(&mut st, optc::CONNECTION)?,
            Tag::Numeric => {
                set_option(&mut st, optc::NUMERIC)?;
                st.format |= fmt::NUMERIC;
            }
            Tag::McastIf => set_option(&mut st, optc::MCAST)?,
            Tag::SyncId => {
                set_option(&mut st, optc::SYNCID)?;
                string_to_number(a, 0, 255)
                    .ok_or_else(|| CliExit::fail("illegal syncid specified"))?;
            }
            Tag::Timeout => set_option(&mut st, optc::TIMEOUT)?,
            Tag::Daemon => set_option(&mut st, optc::DAEMON)?,
            Tag::Stats => {
                set_option(&mut st, optc::STATS)?;
                st.format |= fmt::STATS;
            }
            Tag::Rate => {
                set_option(&mut st, optc::RATE)?;
                st.format |= fmt::RATE;
            }
            Tag::Thresholds => {
                set_option(&mut st, optc::THRESHOLDS)?;
                st.format |= fmt::THRESHOLDS;
            }
            Tag::PersistentConn => {
                set_option(&mut st, optc::PERSISTENTCONN)?;
                st.format |= fmt::PERSISTENTCONN;
            }
            Tag::NoSort => {
                set_option(&mut st, optc::NOSORT)?;
                st.format |= fmt::NOSORT;
            }
            Tag::Sort => {}
            Tag::Exact => {
                set_option(&mut st, optc::EXACT)?;
                st.format |= fmt::EXACT;
            }
            Tag::Ipv6 => {
                if st.svc.fwmark != 0 {
                    st.svc.af = Af::V6;
                    st.svc.netmask = 128;
                } else {
                    return Err(CliExit::fail("-6 used before -f\n"));
                }
            }
            Tag::Ops => {
                set_option(&mut st, optc::ONEPACKET)?;
                st.svc.flags |= xvs_dataplane::service::svc_flags::ONEPACKET;
            }
            Tag::Pe => {
                set_option(&mut st, optc::PE)?;
                st.svc.pe_name = a.chars().take(16).collect();
            }
            Tag::SchedFlags => {
                set_option(&mut st, optc::SCHED_FLAGS)?;
                sched_flags_arg = a.chars().take(127).collect();
            }
            Tag::McastGroup => {
                set_option(&mut st, optc::MCAST_GROUP)?;
                if a.contains(':') {
                    if !a
                        .parse::<std::net::Ipv6Addr>()
                        .is_ok_and(|x| x.is_multicast())
                    {
                        return Err(CliExit::fail(format!("invalid IPv6 mcast-group `{a}'")));
                    }
                } else if !a.parse::<Ipv4Addr>().is_ok_and(|x| x.is_multicast()) {
                    return Err(CliExit::fail(format!("invalid IPv4 mcast-group `{a}'")));
                }
            }
            Tag::McastPort => {
                set_option(&mut st, optc::MCAST_PORT)?;
                string_to_number(a, 1, 65535)
                    .ok_or_else(|| CliExit::fail("illegal mcast-port specified"))?;
            }
            Tag::McastTtl => {
                set_option(&mut st, optc::MCAST_TTL)?;
                string_to_number(a, 1, 255)
                    .ok_or_else(|| CliExit::fail("illegal mcast-ttl specified"))?;
            }
            Tag::SyncMaxlen => {
                set_option(&mut st, optc::SYNC_MAXLEN)?;
                string_to_number(a, 1, 65535 - 20 - 8)
                    .ok_or_else(|| CliExit::fail("illegal sync-maxlen specified"))?;
            }
            Tag::TunInfo => {
                set_option(&mut st, optc::TUN_INFO)?;
                st.format |= fmt::TUN_INFO;
            }
            Tag::TunType => {
                set_option(&mut st, optc::TUN_TYPE)?;
                st.dest.tun_type = match a {
                    "ipip" => tun_type::IPIP,
                    "gue" => tun_type::GUE,
                    "gre" => tun_type::GRE,
                    _ => return Err(CliExit::fail("illegal tunnel type specified")),
                };
            }
            Tag::TunPort => {
                set_option(&mut st, optc::TUN_PORT)?;
                st.dest.tun_port = string_to_number(a, 1, 65535)
                    .ok_or_else(|| CliExit::fail("illegal tunnel port specified"))?
                    as u16;
            }
            Tag::TunNocsum => set_option(&mut st, optc::TUN_NOCSUM)?,
            Tag::TunCsum => {
                set_option(&mut st, optc::TUN_CSUM)?;
                st.dest.tun_flags |= xvs_dataplane::service::tun_flags::CSUM;
            }
            Tag::TunRemcsum => {
                set_option(&mut st, optc::TUN_REMCSUM)?;
                st.dest.tun_flags |= xvs_dataplane::service::tun_flags::REMCSUM;
            }
            Tag::Laddr => {
                set_option(&mut st, optc::LADDR)?;
                let ip = a
                    .parse::<IpAddr>()
                    .ok()
                    .or_else(|| inet_aton(a).map(IpAddr::V4))
                    .ok_or_else(|| CliExit::fail("illegal local address specified"))?;
                st.laddr = Some(ip);
            }
            Tag::Json => {
                set_option(&mut st, optc::JSON)?;
                st.json = true;
            }
            _ => {
                return Err(CliExit::fail(format!(
                    "invalid option `{}'",
                    popt.bad("").bad
                )));
            }
        }
    }

    // INVARIANT: the first option set a command or we returned above.
    let Some(cmd) = st.cmd else {
        return Err(CliExit::tryhelp(prog));
    };

    if cmd == Cmd::Timeout {
        match (popt.next_arg(), popt.next_arg(), popt.next_arg()) {
            (Some(a), Some(b), Some(c)) => {
                st.timeouts = (
                    parse_timeout(Some(&a), 0, MAX_TIMEOUT)?,
                    parse_timeout(Some(&b), 0, MAX_TIMEOUT)?,
                    parse_timeout(Some(&c), 0, MAX_TIMEOUT)?,
                );
            }
            _ => return Err(CliExit::fail("--set option requires 3 timeout values")),
        }
    }
    if let Some(a) = popt.next_arg() {
        return Err(CliExit::fail(format!("unexpected argument {a}")));
    }
    if !sched_flags_arg.is_empty() {
        use xvs_dataplane::service::svc_flags::{SCHED1, SCHED2, SCHED3};
        st.svc.flags &= !(SCHED1 | SCHED2 | SCHED3);
        st.svc.flags |= parse_sched_flags(&st.svc.sched_name, &sched_flags_arg)?;
    }

    generic_opt_check(cmd, st.options)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        use xvs_dataplane::service::svc_flags::{ONEPACKET, PERSISTENT};
        if st.svc.fwmark == 0 && st.svc.port == 0 && st.svc.flags & PERSISTENT == 0 {
            return Err(CliExit::fail(
                "Zero port specified for non-persistent service",
            ));
        }
        if st.svc.flags & ONEPACKET != 0 && st.svc.fwmark == 0 && st.svc.protocol != 17 {
            return Err(CliExit::fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if st.svc.sched_name.is_empty() {
            st.svc.sched_name = DEF_SCHED.into();
        }
    }

    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        if st.svc.fwmark == 0 && matches!(st.dest.fwd, Fwd::Tunnel | Fwd::Route) {
            st.dest.port = st.svc.port;
        }
        if st.dest.af != st.svc.af && st.dest.fwd != Fwd::Tunnel {
            return Err(CliExit::fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tun_bits = [
            optc::TUN_TYPE,
            optc::TUN_PORT,
            optc::TUN_NOCSUM,
            optc::TUN_CSUM,
            optc::TUN_REMCSUM,
        ]
        .iter()
        .fold(0u64, |m, &b| m | (1u64 << b));
        if st.options & tun_bits != 0 && st.dest.fwd != Fwd::Tunnel {
            return Err(CliExit::fail("Tunnel options conflict with forward method"));
        }
        tunnel_opt_check(st.dest.tun_type, st.options)?;
    }

    let has = |b: usize| st.options & (1u64 << b) != 0;
    let key = svc_key(&st.svc);
    let spec = || ServiceSpec {
        key,
        sched_name: st.svc.sched_name.clone(),
        flags: st.svc.flags,
        timeout_s: st.svc.timeout,
        netmask: st.svc.netmask,
        pe_name: (!st.svc.pe_name.is_empty()).then(|| st.svc.pe_name.clone()),
    };
    let dest = || DestSpec {
        addr: st.dest.addr,
        port: st.dest.port,
        fwd: st.dest.fwd,
        weight: st.dest.weight,
        u_threshold: st.dest.u_threshold,
        l_threshold: st.dest.l_threshold,
        tun_type: st.dest.tun_type,
        tun_port: st.dest.tun_port,
        tun_flags: st.dest.tun_flags,
    };
    Ok(match cmd {
        Cmd::List => {
            let conflict = (has(optc::CONNECTION) || has(optc::TIMEOUT) || has(optc::DAEMON))
                && (has(optc::STATS) || has(optc::RATE) || has(optc::THRESHOLDS))
                || (has(optc::TIMEOUT) || has(optc::DAEMON)) && has(optc::PERSISTENTCONN);
            if conflict {
                return Err(CliExit::fail("options conflicts in the list command"));
            }
            let what = if has(optc::CONNECTION) {
                ListWhat::Conns
            } else if has(optc::SERVICE) {
                ListWhat::Service(key)
            } else if has(optc::TIMEOUT) {
                ListWhat::Timeout
            } else if has(optc::DAEMON) {
                ListWhat::Daemon
            } else {
                ListWhat::All
            };
            Action::List {
                what,
                format: st.format,
                json: st.json,
            }
        }
        Cmd::Restore => {
            if reading_stdin {
                return Err(CliExit::tryhelp(prog));
            }
            Action::Restore
        }
        Cmd::Save => Action::Save {
            format: st.format | fmt::RULE,
        },
        Cmd::Flush => Action::Exec(Command::Flush),
        Cmd::Add => Action::Exec(Command::AddService(spec())),
        Cmd::Edit => Action::Exec(Command::EditService(spec())),
        Cmd::Del => Action::Exec(Command::DelService(key)),
        Cmd::Zero => Action::Exec(Command::Zero(has(optc::SERVICE).then_some(key))),
        Cmd::AddDest => Action::Exec(Command::AddDest(key, dest())),
        Cmd::EditDest => Action::Exec(Command::EditDest(key, dest())),
        Cmd::DelDest => Action::Exec(Command::DelDest(key, st.dest.addr, st.dest.port)),
        Cmd::Timeout => Action::Exec(Command::SetTimeouts {
            tcp: st.timeouts.0,
            tcp_fin: st.timeouts.1,
            udp: st.timeouts.2,
        }),
        Cmd::StartDaemon => Action::Exec(Command::StartDaemon),
        Cmd::StopDaemon => Action::Exec(Command::StopDaemon),
        Cmd::AddLaddr | Cmd::DelLaddr => {
            // INVARIANT: the matrix makes -z compulsory for these commands.
            let Some(l) = st.laddr else {
                return Err(CliExit::fail("illegal local address specified"));
            };
            if cmd == Cmd::AddLaddr {
                Action::Exec(Command::AddLaddr(key, l))
            } else {
                Action::Exec(Command::DelLaddr(key, l))
            }
        }
        Cmd::GetLaddr => Action::GetLaddr {
            service: has(optc::SERVICE).then_some(key),
            format: st.format,
        },
        Cmd::Counters => Action::Counters { json: st.json },
    })
}

/// Split one line of `-R` input into words as ipvsadm's `config_stream_read` does: whitespace
/// separated, the word `ipvsadm` dropped wherever it appears. (Its `#` handling never fires:
/// a `#` word is passed on like any other, so a comment line fails as in ipvsadm.)
#[must_use]
pub fn restore_words(prog: &str, line: &str) -> Vec<String> {
    let mut v = vec![prog.to_owned()];
    v.extend(
        line.split([' ', '\t', '\r'])
            .filter(|w| !w.is_empty() && *w != "ipvsadm")
            .map(str::to_owned),
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Action {
        let argv: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        parse(&argv, false, &Names::default())
    }

    fn exit(s: &str) -> CliExit {
        match p(s) {
            Action::Exit(e) => e,
            a => panic!("expected exit for {s:?}, got {a:?}"),
        }
    }

    #[test]
    fn matrix_rows_have_full_width() {
        for r in MATRIX {
            assert_eq!(r.len(), optc::COUNT);
        }
    }

    #[test]
    fn add_service_defaults() {
        let Action::Exec(Command::AddService(s)) = p("ipvsadm -A -t 10.0.0.1:80 -p") else {
            panic!()
        };
        assert_eq!(s.sched_name, "wlc");
        assert_eq!(s.timeout_s, 360);
        assert_eq!(s.netmask, 0xffff_ffff);
        let Action::Exec(Command::AddService(s)) = p("ipvsadm -A -t 10.0.0.1:80 -p600 -s rr")
        else {
            panic!()
        };
        assert_eq!((s.timeout_s, s.sched_name.as_str()), (600, "rr"));
        // -p followed by a word not starting with '-' takes it.
        assert_eq!(
            exit("ipvsadm -A -t 10.0.0.1:80 -p x").stderr,
            "invalid timeout value `x' specified\n"
        );
    }

    #[test]
    fn dest_port_follows_service_for_dr_and_tun() {
        let Action::Exec(Command::AddDest(_, d)) =
            p("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:8080 -g")
        else {
            panic!()
        };
        assert_eq!(d.port, 80);
        let Action::Exec(Command::AddDest(_, d)) =
            p("ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m")
        else {
            panic!()
        };
        assert_eq!((d.port, d.weight, d.fwd), (8080, 1, Fwd::Masq));
        // -r before -t: the copied service port is still 0.
        let Action::Exec(Command::AddDest(_, d)) = p("ipvsadm -a -r 10.0.0.2 -m -t 10.0.0.1:80")
        else {
            panic!()
        };
        assert_eq!(d.port, 0);
    }

    #[test]
    fn errors_and_statuses() {
        let e = exit("ipvsadm -t 1.2.3.4:80 -A");
        assert_eq!(e.code, 255);
        assert!(e.stderr.starts_with("Try `ipvsadm -h'"));
        let e = exit("ipvsadm -Lq");
        assert_eq!((e.code, e.stderr.as_str()), (255, "-Lq: unknown option\n"));
        let e = exit("ipvsadm -A -t");
        assert_eq!(e.stderr, "-t: missing argument\n");
        assert_eq!(
            exit("ipvsadm -A -t 1.2.3.4").stderr,
            "Zero port specified for non-persistent service\n"
        );
        assert_eq!(exit("ipvsadm -A -D").stderr, "invalid option `-D'\n");
        assert_eq!(
            exit("ipvsadm -a -t 1.2.3.4:80").stderr,
            "You need to supply the 'real-server' option for the 'add-server' command\n"
        );
        assert_eq!(
            exit("ipvsadm -L -c --stats").stderr,
            "options conflicts in the list command\n"
        );
        assert_eq!(
            exit("ipvsadm -L -c --timeout").stderr,
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command\n"
        );
        assert_eq!(
            exit("ipvsadm -a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gue").stderr,
            "You need to supply the 'tun-port' option for the 'gue' tunnel type\n"
        );
        assert_eq!(
            exit("ipvsadm -a -t 1.2.3.4:80 -r 1.1.1.1 -m --tun-csum").stderr,
            "Tunnel options conflict with forward method\n"
        );
        assert_eq!(exit("ipvsadm -A -6").stderr, "-6 used before -f\n\n");
        assert_eq!(exit("ipvsadm -C foo").stderr, "unexpected argument foo\n");
        assert_eq!(
            exit("ipvsadm --set 1 2").stderr,
            "--set option requires 3 timeout values\n"
        );
        assert_eq!(exit("ipvsadm -h").code, 0);
    }

    #[test]
    fn ipv6_and_fwmark() {
        let Action::Exec(Command::AddService(s)) = p("ipvsadm -A -f 5 -6 -p -M 64") else {
            panic!()
        };
        assert_eq!(s.key, SvcKey::Fwmark { v6: true, mark: 5 });
        assert_eq!(s.netmask, 64);
        let Action::Exec(Command::AddDest(k, d)) =
            p("ipvsadm -a -t [2001:db8::1]:80 -r 2001:db8::2 -m")
        else {
            panic!()
        };
        assert!(k.is_v6());
        assert_eq!(d.port, 80);
    }

    #[test]
    fn restore_words_drop_program_name() {
        assert_eq!(
            restore_words("x", "ipvsadm -A\t-t 1.2.3.4:80  \r"),
            vec!["x", "-A", "-t", "1.2.3.4:80"]
        );
    }
}
