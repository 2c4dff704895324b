//! The request/response contract on the xvsd control socket: one Rust type for both ends.
//!
//! Wire format: each message is a frame, a 4-byte big-endian length followed by that many bytes
//! of JSON (serde_json). Every [`Request`] and [`Response`] carries [`VERSION`]; a daemon answers
//! a request of another version, a malformed body or a frame longer than [`MAX_FRAME`] with
//! [`ResponseBody::Error`] and changes nothing. Large answers (`-L` of many services, `-c`) come
//! as several frames, each at most [`MAX_FRAME`] (`more: true` on all but the last); large
//! requests (`-R` input) go as several [`RequestBody::Restore`] chunks.
//!
//! Errors mirror the kernel's: the daemon validates a [`Command`] as `ip_vs_ctl.c` does and
//! answers the errno the kernel would, with the text libipvs's `ipvs_strerror` prints for it
//! (the text depends on which libipvs call failed: see [`Op`]).
//! Never: trust a length prefix before checking it against the limit, or panic on any input.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use xvs_dataplane::service::{Family, FwdMode, Protocol, ServiceKey, TunConf, TunType};

/// Protocol version spoken by this build.
pub const VERSION: u32 = 1;

/// Largest frame accepted in either direction (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// The IPVS version the daemon reports (`IP_VS_VERSION_CODE`, shown as 1.2.1).
pub const IPVS_VERSION_CODE: u32 = 0x0001_0201;

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/xvs/xvs.sock";

/// Errors of framing and decoding.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Eof,
    /// A frame longer than [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME} bytes")]
    TooLarge(usize),
    /// The body is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message of another protocol version.
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    UnknownVersion(u32),
    /// The daemon answered something the request does not expect.
    #[error("unexpected response")]
    Unexpected,
    /// Socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A virtual service key as it travels on the socket.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SvcKey {
    /// proto + VIP + port.
    Inet {
        /// IP protocol number (6, 17, 132).
        proto: u8,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// Firewall mark service.
    Fwmark {
        /// IPv6 (`-f N -6`).
        v6: bool,
        /// The mark.
        mark: u32,
    },
}

impl SvcKey {
    /// The data plane's key, if the protocol is one IPVS serves.
    #[must_use]
    pub fn to_service_key(&self) -> Option<ServiceKey> {
        Some(match *self {
            Self::Inet { proto, addr, port } => ServiceKey::Inet {
                proto: Protocol::from_number(proto)?,
                addr,
                port,
            },
            Self::Fwmark { v6, mark } => ServiceKey::Fwmark {
                family: if v6 { Family::V6 } else { Family::V4 },
                mark,
            },
        })
    }

    /// From the data plane's key.
    #[must_use]
    pub fn from_service_key(k: &ServiceKey) -> Self {
        match *k {
            ServiceKey::Inet { proto, addr, port } => Self::Inet {
                proto: proto.number(),
                addr,
                port,
            },
            ServiceKey::Fwmark { family, mark } => Self::Fwmark {
                v6: family == Family::V6,
                mark,
            },
        }
    }

    /// Whether the service is IPv6.
    #[must_use]
    pub fn is_v6(&self) -> bool {
        match *self {
            Self::Inet { addr, .. } => addr.is_ipv6(),
            Self::Fwmark { v6, .. } => v6,
        }
    }
}

/// Forwarding mode on the wire.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fwd {
    /// NAT (`-m`).
    Masq,
    /// Local node.
    Local,
    /// Tunnel (`-i`).
    Tunnel,
    /// Direct routing (`-g`).
    Route,
    /// Full NAT (`--fullnat`).
    FullNat,
}

impl From<FwdMode> for Fwd {
    fn from(m: FwdMode) -> Self {
        match m {
            FwdMode::Masq => Self::Masq,
            FwdMode::Local => Self::Local,
            FwdMode::Tunnel => Self::Tunnel,
            FwdMode::Route => Self::Route,
            FwdMode::FullNat => Self::FullNat,
        }
    }
}

impl From<Fwd> for FwdMode {
    fn from(m: Fwd) -> Self {
        match m {
            Fwd::Masq => Self::Masq,
            Fwd::Local => Self::Local,
            Fwd::Tunnel => Self::Tunnel,
            Fwd::Route => Self::Route,
            Fwd::FullNat => Self::FullNat,
        }
    }
}

/// A service as `-A/-E` specify it (`ip_vs_service_user`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Identity.
    pub key: SvcKey,
    /// Scheduler name.
    pub sched_name: String,
    /// `IP_VS_SVC_F_*` flags.
    pub flags: u32,
    /// Persistence timeout, seconds.
    pub timeout_s: u32,
    /// IPv4: mask in host order; IPv6: prefix length.
    pub netmask: u32,
    /// Persistence engine.
    pub pe_name: Option<String>,
}

/// Tunnel type numbers as the kernel numbers them.
pub mod tun_type {
    /// IPIP.
    pub const IPIP: u8 = 0;
    /// GUE.
    pub const GUE: u8 = 1;
    /// GRE.
    pub const GRE: u8 = 2;
}

/// A dest as `-a/-e` specify it (`ip_vs_dest_user`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSpec {
    /// Real server address.
    pub addr: IpAddr,
    /// Real server port.
    pub port: u16,
    /// Forwarding mode.
    pub fwd: Fwd,
    /// Weight.
    pub weight: i32,
    /// Upper threshold.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub u_threshold: u32,
    /// Lower threshold.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub l_threshold: u32,
    /// Tunnel type ([`tun_type`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tun_type: u8,
    /// GUE port.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tun_port: u16,
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tun_flags: u16,
}

impl DestSpec {
    /// The data plane's tunnel settings.
    #[must_use]
    pub fn tun_conf(&self) -> TunConf {
        TunConf {
            kind: match self.tun_type {
                tun_type::GUE => TunType::Gue,
                tun_type::GRE => TunType::Gre,
                _ => TunType::Ipip,
            },
            port: self.tun_port,
            flags: self.tun_flags,
        }
    }

    /// Tunnel type number of a data plane tunnel kind.
    #[must_use]
    pub fn tun_type_of(kind: TunType) -> u8 {
        match kind {
            TunType::Ipip => tun_type::IPIP,
            TunType::Gue => tun_type::GUE,
            TunType::Gre => tun_type::GRE,
        }
    }
}

/// A configuration change (one ipvsadm command).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `-A`.
    AddService(ServiceSpec),
    /// `-E`.
    EditService(ServiceSpec),
    /// `-D`.
    DelService(SvcKey),
    /// `-C`.
    Flush,
    /// `-a`.
    AddDest(SvcKey, DestSpec),
    /// `-e`.
    EditDest(SvcKey, DestSpec),
    /// `-d`.
    DelDest(SvcKey, IpAddr, u16),
    /// `-Z [service]`.
    Zero(Option<SvcKey>),
    /// `--set tcp tcpfin udp` (0 keeps a value).
    SetTimeouts {
        /// TCP established.
        tcp: u32,
        /// TCP FIN_WAIT.
        tcp_fin: u32,
        /// UDP.
        udp: u32,
    },
    /// `--start-daemon` (not supported: answered with ENOSYS).
    StartDaemon,
    /// `--stop-daemon` (not supported: answered with ENOSYS).
    StopDaemon,
    /// `--add-laddr` (FULLNAT local address).
    AddLaddr(SvcKey, IpAddr),
    /// `--del-laddr`.
    DelLaddr(SvcKey, IpAddr),
}

/// The libipvs call an error came from; `ipvs_strerror` words some errnos per call.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `ipvs_add_service`.
    AddService,
    /// `ipvs_update_service`.
    UpdateService,
    /// `ipvs_del_service`.
    DelService,
    /// `ipvs_zero_service`.
    ZeroService,
    /// `ipvs_add_dest`.
    AddDest,
    /// `ipvs_update_dest`.
    UpdateDest,
    /// `ipvs_del_dest`.
    DelDest,
    /// `ipvs_start_daemon`.
    StartDaemon,
    /// `ipvs_stop_daemon`.
    StopDaemon,
    /// `ipvs_get_service`.
    GetService,
    /// Anything else (flush, set timeout, FULLNAT local addresses).
    Other,
    /// FULLNAT local address calls (xvs additions).
    Laddr,
}

impl Command {
    /// The libipvs call ipvsadm makes for this command.
    #[must_use]
    pub fn op(&self) -> Op {
        match self {
            Self::AddService(_) => Op::AddService,
            Self::EditService(_) => Op::UpdateService,
            Self::DelService(_) => Op::DelService,
            Self::Zero(_) => Op::ZeroService,
            Self::AddDest(..) => Op::AddDest,
            Self::EditDest(..) => Op::UpdateDest,
            Self::DelDest(..) => Op::DelDest,
            Self::StartDaemon => Op::StartDaemon,
            Self::StopDaemon => Op::StopDaemon,
            Self::AddLaddr(..) | Self::DelLaddr(..) => Op::Laddr,
            Self::Flush | Self::SetTimeouts { .. } => Op::Other,
        }
    }
}

/// The errnos the control plane answers with.
#[allow(clippy::upper_case_acronyms)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Errno {
    /// Operation not permitted.
    EPERM,
    /// No such file or directory (scheduler / dest not found).
    ENOENT,
    /// No such process (service not found).
    ESRCH,
    /// Out of memory.
    ENOMEM,
    /// Already exists.
    EEXIST,
    /// Invalid argument.
    EINVAL,
    /// Out of range (weight, thresholds).
    ERANGE,
    /// Not implemented (sync daemon).
    ENOSYS,
    /// Protocol not available.
    ENOPROTOOPT,
    /// Not supported.
    EOPNOTSUPP,
    /// Address family not supported.
    EAFNOSUPPORT,
    /// Message too long.
    EMSGSIZE,
}

impl Errno {
    /// glibc's `strerror` text.
    #[must_use]
    pub const fn strerror(self) -> &'static str {
        match self {
            Self::EPERM => "Operation not permitted",
            Self::ENOENT => "No such file or directory",
            Self::ESRCH => "No such process",
            Self::ENOMEM => "Cannot allocate memory",
            Self::EEXIST => "File exists",
            Self::EINVAL => "Invalid argument",
            Self::ERANGE => "Numerical result out of range",
            Self::ENOSYS => "Function not implemented",
            Self::ENOPROTOOPT => "Protocol not available",
            Self::EOPNOTSUPP => "Operation not supported",
            Self::EAFNOSUPPORT => "Address family not supported by protocol",
            Self::EMSGSIZE => "Message too long",
        }
    }

    /// libipvs's `ipvs_strerror(errno)` after a failed call `op`.
    #[must_use]
    pub fn ipvs_strerror(self, op: Op) -> &'static str {
        use Errno::*;
        match (op, self) {
            (Op::AddService, EEXIST) => "Service already exists",
            (Op::AddService | Op::UpdateService, ENOENT) => {
                "Scheduler or persistence engine not found"
            }
            (Op::UpdateService | Op::DelService | Op::ZeroService | Op::GetService, ESRCH) => {
                "No such service"
            }
            (Op::AddDest | Op::UpdateDest | Op::DelDest, ESRCH) => "Service not defined",
            (Op::AddDest, EEXIST) => "Destination already exists",
            (Op::UpdateDest | Op::DelDest, ENOENT) => "No such destination",
            (Op::StartDaemon, EEXIST) => "Daemon has already run",
            (Op::StopDaemon, ESRCH) => "No daemon is running",
            (Op::Laddr, ESRCH) => "No such service",
            (Op::Laddr, EEXIST) => "Local address already exists",
            (Op::Laddr, ENOENT) => "No such local address",
            (_, EPERM) => "Permission denied (you must be root)",
            (_, EINVAL) => {
                "Invalid operation.  Possibly wrong module version, address not unicast, ..."
            }
            (_, ENOPROTOOPT) => "Protocol not available",
            (_, ENOMEM) => "Memory allocation problem",
            (_, EOPNOTSUPP) => "Operation not supported with IPv6",
            (_, EAFNOSUPPORT) => "Operation not supported with specified address family",
            (_, EMSGSIZE) => "Module is wrong version",
            _ => self.strerror(),
        }
    }
}

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The kernel-style errno, if the error is one (None: protocol errors).
    pub errno: Option<Errno>,
    /// The text ipvsadm prints for it.
    pub message: String,
}

/// Counters and rates of a service or dest (libipvs's `ip_vs_stats64`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats64 {
    /// Connections.
    pub conns: u64,
    /// Incoming packets.
    pub inpkts: u64,
    /// Outgoing packets.
    pub outpkts: u64,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

impl Stats64 {
    /// All counters and rates are zero.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One service of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// Its settings.
    pub spec: ServiceSpec,
    /// Counters (omitted on the wire when all zero or not asked for).
    #[serde(default, skip_serializing_if = "Stats64::is_zero")]
    pub stats: Stats64,
    /// FULLNAT local addresses.
    pub laddrs: Vec<IpAddr>,
}

/// One dest of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestEntry {
    /// Its settings.
    pub spec: DestSpec,
    /// ActiveConn.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub activeconns: u32,
    /// InActConn.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inactconns: u32,
    /// PersistConn.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub persistconns: u32,
    /// Counters (omitted on the wire when all zero or not asked for).
    #[serde(default, skip_serializing_if = "Stats64::is_zero")]
    pub stats: Stats64,
}

/// An item of a (possibly multi-frame) listing: a service, then its dests in kernel order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListItem {
    /// A service; the dests that follow belong to it.
    Service(ServiceEntry),
    /// A dest of the last service.
    Dest(DestEntry),
}

/// One connection as `-Lnc` shows it (the kernel's `/proc/net/ip_vs_conn` row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnRow {
    /// IP protocol number (0 for fwmark templates).
    pub proto: u8,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Dest address.
    pub daddr: IpAddr,
    /// Dest port.
    pub dport: u16,
    /// State name as the kernel prints it ("ESTABLISHED", "UDP", "NONE", ...).
    pub state: String,
    /// Seconds until expiry.
    pub expires_s: u32,
    /// Persistence engine name and data, if the conn has them.
    pub pe: Option<(String, String)>,
}

/// Result of a restore.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// Lines read.
    pub lines: usize,
    /// Commands applied.
    pub applied: usize,
    /// Messages to print on stderr, in order.
    pub messages: Vec<String>,
    /// The input line (1-based) each message is about.
    pub error_lines: Vec<usize>,
    /// The exit status ipvsadm would end with.
    pub exit_code: i32,
}

/// Where one worker's UMEM frames are (the AF_XDP backend's frame accounting): `free +
/// in_flight == total` unless a frame leaked; `in_flight = fill + held + tx`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameInfo {
    /// Chunks in the worker's UMEM.
    pub total: u64,
    /// On the free list.
    pub free: u64,
    /// Not on the free list (fill + held + tx, counted independently of the free list).
    pub in_flight: u64,
    /// Given to the kernel through fill rings, not received yet.
    pub fill: u64,
    /// In the worker's hands (received or allocated, not yet sent or recycled).
    pub held: u64,
    /// On TX or completion rings.
    pub tx: u64,
    /// Descriptors refused because they named no chunk of the UMEM (a bug if non-zero).
    pub bad_descs: u64,
}

/// One worker's counters, as it last published them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Conns created.
    pub conns_created: u64,
    /// ARP/ND answers sent.
    pub neigh_replies: u64,
    /// ARP/ND requests sent.
    pub neigh_requests: u64,
    /// Frames forwarded through the worker's flow cache (their conn touched by reference, not
    /// looked up; also counted in `rx_packets`). Absent from a peer that predates it: 0.
    #[serde(default)]
    pub flow_hits: u64,
    /// Drops, indexed like [`Counters::drop_reasons`].
    pub drops: Vec<u64>,
    /// UMEM frames (None: the worker's backend has no UMEM, e.g. offline).
    pub frames: Option<FrameInfo>,
}

/// The SYN-flood defence: settings (IPVS's sysctls) and state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefenceInfo {
    /// `drop_entry`: "off", "auto" or "always".
    pub drop_entry: String,
    /// `drop_packet`: "off", "auto" or "always".
    pub drop_packet: String,
    /// `secure_tcp`: "off", "auto" or "always".
    pub secure_tcp: String,
    /// Free conn entries below which "auto" turns on.
    pub amemthresh: u64,
    /// Whether `drop_entry` runs now.
    pub active: bool,
    /// Half-open conns `drop_entry` has removed.
    pub dropped_entries: u64,
}

/// Data-plane counters (`xvsadm --counters`, an xvs addition): drops by reason, the
/// SYN-flood defence, the conn table, each worker's traffic and UMEM frames, and the daemon's
/// open file descriptors and resident memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Drop reason names, in the index order of [`WorkerCounters::drops`].
    pub drop_reasons: Vec<String>,
    /// Per worker, in worker order (empty when no worker runs).
    pub workers: Vec<WorkerCounters>,
    /// Conn table entries (conns and templates).
    pub conns: u64,
    /// Conn table maximum (`--max-conns`).
    pub max_conns: u64,
    /// The SYN-flood defence.
    pub defence: DefenceInfo,
    /// Open file descriptors of the daemon (the control connection asking included).
    pub fds: u64,
    /// Resident memory of the daemon, KiB (`VmRSS`).
    pub rss_kib: u64,
}

impl Counters {
    /// Drops of every worker by reason, in [`Counters::drop_reasons`] order.
    #[must_use]
    pub fn drop_totals(&self) -> Vec<u64> {
        let mut t = vec![0u64; self.drop_reasons.len()];
        for w in &self.workers {
            for (a, b) in t.iter_mut().zip(&w.drops) {
                *a += b;
            }
        }
        t
    }
}

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestBody {
    /// Change the configuration.
    Exec(Command),
    /// Version and conn table size.
    GetInfo,
    /// Services with their dests (all, or one); answered in [`ResponseBody::List`] frames.
    List {
        /// One service only.
        service: Option<SvcKey>,
        /// Include counters and rates (`--stats`, `--rate`, `--json`).
        #[serde(default)]
        stats: bool,
    },
    /// `--timeout`.
    GetTimeouts,
    /// `-c`; answered in [`ResponseBody::Conns`] frames.
    GetConns,
    /// Data-plane counters (`--counters`); answered with [`ResponseBody::Counters`].
    GetCounters,
    /// A piece of ipvsadm-save text for `-R`; applied as one snapshot when `last`.
    Restore {
        /// argv\[0\] of the client (for the messages that name it).
        prog: String,
        /// Whole lines of text.
        chunk: String,
        /// This is the final chunk.
        last: bool,
    },
}

/// A request frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// [`VERSION`].
    pub version: u32,
    /// What is asked.
    pub body: RequestBody,
}

/// What the daemon answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseBody {
    /// Done.
    Ok,
    /// Refused; nothing changed.
    Error(ErrorReply),
    /// `GetInfo`.
    Info {
        /// IPVS version code.
        version_code: u32,
        /// Conn table buckets (1 << conn_tab_bits).
        conn_tab_size: u32,
    },
    /// `GetTimeouts`.
    Timeouts {
        /// TCP.
        tcp: u32,
        /// TCP FIN.
        tcp_fin: u32,
        /// UDP.
        udp: u32,
    },
    /// A frame of a listing.
    List {
        /// Items in order.
        items: Vec<ListItem>,
        /// More frames follow.
        more: bool,
    },
    /// A frame of the conn listing.
    Conns {
        /// Rows.
        rows: Vec<ConnRow>,
        /// More frames follow.
        more: bool,
    },
    /// Result of a restore.
    Restore(RestoreReport),
    /// `GetCounters`.
    Counters(Box<Counters>),
}

/// A response frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// [`VERSION`].
    pub version: u32,
    /// The answer.
    pub body: ResponseBody,
}

impl Response {
    /// A response of this version.
    #[must_use]
    pub fn new(body: ResponseBody) -> Self {
        Self {
            version: VERSION,
            body,
        }
    }

    /// A protocol-level error response.
    #[must_use]
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(ResponseBody::Error(ErrorReply {
            errno: None,
            message: message.into(),
        }))
    }
}

/// Write one frame.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), ProtoError> {
    let body = serde_json::to_vec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(ProtoError::TooLarge(body.len()));
    }
    // INVARIANT: body.len() <= MAX_FRAME < u32::MAX.
    let len = u32::try_from(body.len()).map_err(|_| ProtoError::TooLarge(body.len()))?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Read one frame's body; [`ProtoError::TooLarge`] before reading a body over the limit.
pub fn read_frame<R: Read>(r: &mut R) -> Result<Vec<u8>, ProtoError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(ProtoError::Eof),
            Ok(0) => {
                return Err(ProtoError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "truncated frame header",
                )));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(ProtoError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Only the version of a message (the body is skipped, not built).
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

fn check_version(bytes: &[u8]) -> Result<(), ProtoError> {
    let v: VersionOnly =
        serde_json::from_slice(bytes).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if v.version == VERSION {
        Ok(())
    } else {
        Err(ProtoError::UnknownVersion(v.version))
    }
}

/// Decode a request body, checking its version first (so a request of another version is
/// refused as such even if its body would not parse).
pub fn decode_request(bytes: &[u8]) -> Result<Request, ProtoError> {
    check_version(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| ProtoError::Malformed(e.to_string()))
}

/// Decode a response body, checking its version.
pub fn decode_response(bytes: &[u8]) -> Result<Response, ProtoError> {
    check_version(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| ProtoError::Malformed(e.to_string()))
}

/// A client connection to the daemon.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connect to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ProtoError> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Self { stream })
    }

    /// Send one request.
    pub fn send(&mut self, body: RequestBody) -> Result<(), ProtoError> {
        write_frame(
            &mut self.stream,
            &Request {
                version: VERSION,
                body,
            },
        )
    }

    /// Receive one response.
    pub fn recv(&mut self) -> Result<ResponseBody, ProtoError> {
        let bytes = read_frame(&mut self.stream)?;
        Ok(decode_response(&bytes)?.body)
    }

    /// One request, one response.
    pub fn call(&mut self, body: RequestBody) -> Result<ResponseBody, ProtoError> {
        self.send(body)?;
        self.recv()
    }

    /// A listing: all frames' items, or the error answer.
    pub fn list(
        &mut self,
        service: Option<SvcKey>,
        stats: bool,
    ) -> Result<Result<Vec<ListItem>, ErrorReply>, ProtoError> {
        self.send(RequestBody::List { service, stats })?;
        let mut all = Vec::new();
        loop {
            match self.recv()? {
                ResponseBody::List { mut items, more } => {
                    all.append(&mut items);
                    if !more {
                        return Ok(Ok(all));
                    }
                }
                ResponseBody::Error(e) => return Ok(Err(e)),
                _ => return Err(ProtoError::Unexpected),
            }
        }
    }

    /// The conn listing.
    pub fn conns(&mut self) -> Result<Vec<ConnRow>, ProtoError> {
        self.send(RequestBody::GetConns)?;
        let mut all = Vec::new();
        loop {
            match self.recv()? {
                ResponseBody::Conns { mut rows, more } => {
                    all.append(&mut rows);
                    if !more {
                        return Ok(all);
                    }
                }
                _ => return Err(ProtoError::Unexpected),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let req = Request {
            version: VERSION,
            body: RequestBody::Exec(Command::DelService(SvcKey::Fwmark { v6: false, mark: 7 })),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        let body = read_frame(&mut buf.as_slice()).unwrap();
        assert_eq!(decode_request(&body).unwrap(), req);
    }

    #[test]
    fn oversized_length_is_refused_before_reading() {
        let mut buf = (u32::try_from(MAX_FRAME).unwrap() + 1)
            .to_be_bytes()
            .to_vec();
        buf.extend_from_slice(b"{}");
        assert!(matches!(
            read_frame(&mut buf.as_slice()),
            Err(ProtoError::TooLarge(n)) if n == MAX_FRAME + 1
        ));
    }

    #[test]
    fn unknown_version_and_garbage() {
        assert!(matches!(
            decode_request(br#"{"version":99,"body":"GetInfo"}"#),
            Err(ProtoError::UnknownVersion(99))
        ));
        assert!(matches!(
            decode_request(b"\x00\xffnot json"),
            Err(ProtoError::Malformed(_))
        ));
        assert!(matches!(
            decode_request(br#"{"version":1,"body":{"Nope":1}}"#),
            Err(ProtoError::Malformed(_))
        ));
        assert!(decode_request(br#"{"version":1,"body":"GetInfo"}"#).is_ok());
    }

    #[test]
    fn strerror_table() {
        assert_eq!(
            Errno::ESRCH.ipvs_strerror(Op::AddDest),
            "Service not defined"
        );
        assert_eq!(
            Errno::ESRCH.ipvs_strerror(Op::DelService),
            "No such service"
        );
        assert_eq!(
            Errno::ERANGE.ipvs_strerror(Op::AddDest),
            "Numerical result out of range"
        );
        assert_eq!(
            Errno::ENOENT.ipvs_strerror(Op::DelDest),
            "No such destination"
        );
    }
}
