//! Protocol state machines and per-state timeouts, as the kernel's `ip_vs_proto_tcp.c`,
//! `ip_vs_proto_udp.c` and (much reduced) `ip_vs_proto_sctp.c` define them.
//!
//! TCP: the next state is `TCP_STATES[row + flag][current]`, where `row` is INPUT, OUTPUT or
//! INPUT_ONLY and `flag` is the first of RST, SYN, FIN, ACK set in the segment
//! ([`tcp_state_idx`]); a segment with none of them moves the conn to CLOSE, exactly as
//! `set_tcp_state` does (its `new_state` starts as CLOSE and the table is skipped). INPUT_ONLY
//! is used for client packets while the conn has the NO_OUTPUT flag, which the kernel sets for
//! every non-NAT dest in `__ip_vs_update_dest` and clears on the first reply; so DR and TUN conns
//! always walk the INPUT_ONLY row and NAT conns walk INPUT/OUTPUT from their first packet.
//!
//! Active/inactive (what we found in the source, which IPVS.md summarised correctly for current
//! kernels): `tcp_state_active_table[]` marks ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK active,
//! everything else inactive. Every new conn starts INACTIVE (`__ip_vs_update_dest` ORs
//! `IP_VS_CONN_F_INACTIVE` into the dest's `conn_flags`, which `ip_vs_bind_dest` copies), so a
//! client SYN (NONE -> SYN_RECV) moves it from InActConn to ActiveConn. Older kernels (before
//! the active table existed) treated only ESTABLISHED as active; we follow the current source.
//! UDP conns never change state and stay in InActConn.
//!
//! SCTP-lite: the kernel's SCTP table (14 states, chunk-type driven) is not reproduced. An SCTP
//! conn is ESTABLISHED (active, 900 s) from its first packet until a packet with
//! [`SCTP_CLOSING`] set in the flags argument (the caller's summary of ABORT or
//! SHUTDOWN_COMPLETE chunks) moves it to CLOSED (inactive, 10 s). State names are the kernel's.
//!
//! Never: allocate or branch on anything but the inputs; these functions run per packet.

use crate::flow::proto;
use crate::service::Timeouts;

/// TCP states (`IP_VS_TCP_S_*`), the values stored in a conn's `state`.
pub mod tcp {
    /// No state yet (a new conn before its first transition).
    pub const NONE: u8 = 0;
    /// Established.
    pub const ESTABLISHED: u8 = 1;
    /// SYN seen from the server side.
    pub const SYN_SENT: u8 = 2;
    /// SYN seen from the client.
    pub const SYN_RECV: u8 = 3;
    /// FIN seen.
    pub const FIN_WAIT: u8 = 4;
    /// Both FINs seen.
    pub const TIME_WAIT: u8 = 5;
    /// Closed (RST, or a segment without flags).
    pub const CLOSE: u8 = 6;
    /// FIN from the client on an established conn.
    pub const CLOSE_WAIT: u8 = 7;
    /// Last ACK.
    pub const LAST_ACK: u8 = 8;
    /// Listen.
    pub const LISTEN: u8 = 9;
    /// SYN+ACK (secure_tcp table only).
    pub const SYNACK: u8 = 10;
    /// Number of states.
    pub const COUNT: usize = 11;
}

/// The single UDP state (`IP_VS_UDP_S_NORMAL`).
pub const UDP_NORMAL: u8 = 0;

/// SCTP-lite states (values of the kernel's `IP_VS_SCTP_S_*` enum).
pub mod sctp {
    /// No state yet.
    pub const NONE: u8 = 0;
    /// Established.
    pub const ESTABLISHED: u8 = 8;
    /// Closed.
    pub const CLOSED: u8 = 13;
}

/// Flag bit the caller sets for an SCTP packet carrying ABORT or SHUTDOWN_COMPLETE.
pub const SCTP_CLOSING: u8 = 0x01;

/// Template states (`IP_VS_CTPL_S_*`): bits.
pub mod ctpl {
    /// Not assured.
    pub const NONE: u8 = 0;
    /// A conn controlled by the template reached ESTABLISHED.
    pub const ASSURED: u8 = 1;
}

/// TCP flag bits as they appear in the header's flags byte.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Which row of the TCP table a packet uses (`TCP_DIR_*`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StateDir {
    /// Client to server, after a reply has been seen (or for NAT from the start).
    Input,
    /// Server to client.
    Output,
    /// Client to server while no reply has been seen (always for DR/TUN).
    InputOnly,
}

impl StateDir {
    const fn offset(self) -> usize {
        match self {
            Self::Input => 0,
            Self::Output => 4,
            Self::InputOnly => 8,
        }
    }
}

// Shorthands for the table, named as in the kernel.
const S_ES: u8 = tcp::ESTABLISHED;
const S_SS: u8 = tcp::SYN_SENT;
const S_SR: u8 = tcp::SYN_RECV;
const S_FW: u8 = tcp::FIN_WAIT;
const S_TW: u8 = tcp::TIME_WAIT;
const S_CL: u8 = tcp::CLOSE;
const S_CW: u8 = tcp::CLOSE_WAIT;
const S_LA: u8 = tcp::LAST_ACK;
const S_LI: u8 = tcp::LISTEN;

/// The kernel's `tcp_states[]` (not the secure_tcp one): rows INPUT syn/fin/ack/rst, OUTPUT
/// syn/fin/ack/rst, INPUT_ONLY syn/fin/ack/rst; columns are the current state.
#[rustfmt::skip]
const TCP_STATES: [[u8; tcp::COUNT]; 12] = [
    // INPUT      sNO   sES   sSS   sSR   sFW   sTW   sCL   sCW   sLA   sLI   sSA
    /* syn */ [S_SR, S_ES, S_ES, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR],
    /* fin */ [S_CL, S_CW, S_SS, S_TW, S_TW, S_TW, S_CL, S_CW, S_LA, S_LI, S_TW],
    /* ack */ [S_ES, S_ES, S_SS, S_ES, S_FW, S_TW, S_CL, S_CW, S_CL, S_LI, S_ES],
    /* rst */ [S_CL, S_CL, S_CL, S_SR, S_CL, S_CL, S_CL, S_CL, S_LA, S_LI, S_SR],
    // OUTPUT
    /* syn */ [S_SS, S_ES, S_SS, S_SR, S_SS, S_SS, S_SS, S_SS, S_SS, S_LI, S_SR],
    /* fin */ [S_TW, S_FW, S_SS, S_TW, S_FW, S_TW, S_CL, S_TW, S_LA, S_LI, S_TW],
    /* ack */ [S_ES, S_ES, S_SS, S_ES, S_FW, S_TW, S_CL, S_CW, S_LA, S_ES, S_ES],
    /* rst */ [S_CL, S_CL, S_SS, S_CL, S_CL, S_TW, S_CL, S_CL, S_CL, S_CL, S_CL],
    // INPUT_ONLY
    /* syn */ [S_SR, S_ES, S_ES, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR],
    /* fin */ [S_CL, S_FW, S_SS, S_TW, S_FW, S_TW, S_CL, S_CW, S_LA, S_LI, S_TW],
    /* ack */ [S_ES, S_ES, S_SS, S_ES, S_FW, S_TW, S_CL, S_CW, S_CL, S_LI, S_ES],
    /* rst */ [S_CL, S_CL, S_CL, S_SR, S_CL, S_CL, S_CL, S_CL, S_LA, S_LI, S_CL],
];

/// Default TCP timeouts in seconds (`tcp_timeouts[]`).
const TCP_TIMEOUTS_S: [u32; tcp::COUNT] = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120];

/// `tcp_state_active_table[]`.
const TCP_ACTIVE: [bool; tcp::COUNT] = [
    false, true, true, true, false, false, false, false, false, false, true,
];

const TCP_NAMES: [&str; tcp::COUNT] = [
    "NONE",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "SYNACK",
];

const SCTP_NAMES: [&str; 14] = [
    "NONE",
    "INIT1",
    "INIT",
    "COOKIE_SENT",
    "COOKIE_REPLIED",
    "COOKIE_WAIT",
    "COOKIE",
    "COOKIE_ECHOED",
    "ESTABLISHED",
    "SHUTDOWN_SENT",
    "SHUTDOWN_RECEIVED",
    "SHUTDOWN_ACK_SENT",
    "REJECTED",
    "CLOSED",
];

/// The table row offset for a TCP segment's flags (`tcp_state_idx`): RST > SYN > FIN > ACK;
/// `None` when none is set.
#[inline]
#[must_use]
pub const fn tcp_state_idx(flags: u8) -> Option<usize> {
    if flags & tcp_flags::RST != 0 {
        Some(3)
    } else if flags & tcp_flags::SYN != 0 {
        Some(0)
    } else if flags & tcp_flags::FIN != 0 {
        Some(1)
    } else if flags & tcp_flags::ACK != 0 {
        Some(2)
    } else {
        None
    }
}

const S_SA: u8 = tcp::SYNACK;

/// The kernel's `tcp_states_dos[]`, the table of the `secure_tcp` defence: a client's ACK does
/// not establish a conn until the server's SYN+ACK was seen (INPUT ack from SYN_RECV stays
/// SYN_RECV; the server's SYN+ACK moves it to SYNACK, whose ACK then establishes), and an ACK
/// or FIN without a conn state closes it. Same layout as [`TCP_STATES`].
#[rustfmt::skip]
const TCP_STATES_DOS: [[u8; tcp::COUNT]; 12] = [
    // INPUT      sNO   sES   sSS   sSR   sFW   sTW   sCL   sCW   sLA   sLI   sSA
    /* syn */ [S_SR, S_ES, S_ES, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SA],
    /* fin */ [S_CL, S_CW, S_SS, S_TW, S_TW, S_TW, S_CL, S_CW, S_LA, S_LI, S_SA],
    /* ack */ [S_CL, S_ES, S_SS, S_SR, S_FW, S_TW, S_CL, S_CW, S_CL, S_LI, S_SA],
    /* rst */ [S_CL, S_CL, S_CL, S_SR, S_CL, S_CL, S_CL, S_CL, S_LA, S_LI, S_CL],
    // OUTPUT
    /* syn */ [S_SS, S_ES, S_SS, S_SA, S_SS, S_SS, S_SS, S_SS, S_SS, S_LI, S_SA],
    /* fin */ [S_TW, S_FW, S_SS, S_TW, S_FW, S_TW, S_CL, S_TW, S_LA, S_LI, S_TW],
    /* ack */ [S_ES, S_ES, S_SS, S_ES, S_FW, S_TW, S_CL, S_CW, S_LA, S_ES, S_ES],
    /* rst */ [S_CL, S_CL, S_SS, S_CL, S_CL, S_TW, S_CL, S_CL, S_CL, S_CL, S_CL],
    // INPUT_ONLY
    /* syn */ [S_SA, S_ES, S_ES, S_SR, S_SA, S_SA, S_SA, S_SA, S_SA, S_SA, S_SA],
    /* fin */ [S_CL, S_FW, S_SS, S_TW, S_FW, S_TW, S_CL, S_CW, S_LA, S_LI, S_TW],
    /* ack */ [S_CL, S_ES, S_SS, S_ES, S_FW, S_TW, S_CL, S_CW, S_CL, S_LI, S_ES],
    /* rst */ [S_CL, S_CL, S_CL, S_SR, S_CL, S_CL, S_CL, S_CL, S_LA, S_LI, S_CL],
];

/// The next TCP state for a segment with `flags` in row `dir` from `cur` (`set_tcp_state`
/// without the side effects). A segment with no RST/SYN/FIN/ACK gives CLOSE, as in the kernel.
#[inline]
#[must_use]
pub fn tcp_next(dir: StateDir, flags: u8, cur: u8) -> u8 {
    tcp_next_in(&TCP_STATES, dir, flags, cur)
}

/// As [`tcp_next`], in the `secure_tcp` table (`tcp_states_dos`).
#[inline]
#[must_use]
pub fn tcp_next_secure(dir: StateDir, flags: u8, cur: u8) -> u8 {
    tcp_next_in(&TCP_STATES_DOS, dir, flags, cur)
}

#[inline]
fn tcp_next_in(table: &[[u8; tcp::COUNT]; 12], dir: StateDir, flags: u8, cur: u8) -> u8 {
    match tcp_state_idx(flags) {
        Some(idx) => {
            let row = &table[dir.offset() + idx];
            row.get(usize::from(cur)).copied().unwrap_or(tcp::CLOSE)
        }
        None => tcp::CLOSE,
    }
}

/// Whether a TCP state counts in ActiveConn (`tcp_state_active`).
#[inline]
#[must_use]
pub fn tcp_active(state: u8) -> bool {
    TCP_ACTIVE.get(usize::from(state)).copied().unwrap_or(false)
}

/// The next state of a conn of protocol `proto` (TCP table, UDP's single state, SCTP-lite).
#[inline]
#[must_use]
pub fn next_state(proto_num: u8, dir: StateDir, flags: u8, cur: u8) -> u8 {
    next_state_with(false, proto_num, dir, flags, cur)
}

/// As [`next_state`]; `secure` picks the `secure_tcp` TCP table.
#[inline(always)]
#[must_use]
pub fn next_state_with(secure: bool, proto_num: u8, dir: StateDir, flags: u8, cur: u8) -> u8 {
    // PERF: the established conn's plain ACK (nearly every packet) stays ESTABLISHED in every
    // row of both tables (test `established_ack_stays_in_every_row`); answered inline, before
    // the table walk (out of line, so that callers inline only this test).
    let first = tcp_flags::RST | tcp_flags::SYN | tcp_flags::FIN | tcp_flags::ACK;
    if proto_num == proto::TCP && cur == tcp::ESTABLISHED && flags & first == tcp_flags::ACK {
        return tcp::ESTABLISHED;
    }
    next_state_walk(secure, proto_num, dir, flags, cur)
}

/// [`next_state_with`] past its established-ACK shortcut.
#[inline(never)]
fn next_state_walk(secure: bool, proto_num: u8, dir: StateDir, flags: u8, cur: u8) -> u8 {
    match proto_num {
        proto::TCP if secure => tcp_next_secure(dir, flags, cur),
        proto::TCP => tcp_next(dir, flags, cur),
        proto::SCTP => {
            if flags & SCTP_CLOSING != 0 {
                sctp::CLOSED
            } else {
                sctp::ESTABLISHED
            }
        }
        _ => UDP_NORMAL,
    }
}

/// Whether `state` of protocol `proto` counts in ActiveConn.
#[inline]
#[must_use]
pub fn is_active(proto_num: u8, state: u8) -> bool {
    match proto_num {
        proto::TCP => tcp_active(state),
        proto::SCTP => state == sctp::ESTABLISHED,
        _ => false,
    }
}

/// Timeout in milliseconds of `state` for protocol `proto`, with the `--set` values `t`
/// (ESTABLISHED, FIN_WAIT and UDP come from `t`; the rest are the kernel's defaults).
#[inline(always)]
#[must_use]
pub fn timeout_ms(proto_num: u8, state: u8, t: &Timeouts) -> u32 {
    let s = match proto_num {
        proto::TCP => match state {
            tcp::ESTABLISHED => t.tcp,
            tcp::FIN_WAIT => t.tcp_fin,
            _ => TCP_TIMEOUTS_S
                .get(usize::from(state))
                .copied()
                .unwrap_or(TCP_TIMEOUTS_S[0]),
        },
        proto::SCTP => match state {
            sctp::ESTABLISHED => 900,
            sctp::CLOSED => 10,
            _ => 3,
        },
        _ => t.udp,
    };
    s.saturating_mul(1000)
}

/// The state name `ipvsadm -Lnc` prints (`ip_vs_state_name`): templates show "NONE" or
/// "ASSURED"; TCP its table names; UDP "UDP"; SCTP the kernel's SCTP names; a conn of another
/// protocol (fwmark templates use protocol 0) "NONE".
#[must_use]
pub fn state_name(proto_num: u8, state: u8, template: bool) -> &'static str {
    if template {
        return if state & ctpl::ASSURED != 0 {
            "ASSURED"
        } else {
            "NONE"
        };
    }
    match proto_num {
        proto::TCP => TCP_NAMES.get(usize::from(state)).copied().unwrap_or("ERR!"),
        proto::UDP => "UDP",
        proto::SCTP => SCTP_NAMES
            .get(usize::from(state))
            .copied()
            .unwrap_or("ERR!"),
        0 => "NONE",
        _ => "ERR!",
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, clippy::type_complexity)]
mod tests {
    use super::tcp::*;
    use super::tcp_flags::*;
    use super::*;

    #[test]
    fn flag_priority() {
        assert_eq!(tcp_state_idx(RST | SYN | FIN | ACK), Some(3));
        assert_eq!(tcp_state_idx(SYN | FIN | ACK), Some(0));
        assert_eq!(tcp_state_idx(FIN | ACK), Some(1));
        assert_eq!(tcp_state_idx(ACK), Some(2));
        assert_eq!(tcp_state_idx(0x08), None); // PSH only
        assert_eq!(tcp_next(StateDir::Input, 0x08, ESTABLISHED), CLOSE);
    }

    /// The shortcut of `next_state_with` answers what the tables answer: for every flag byte
    /// whose first flag is ACK, ESTABLISHED stays ESTABLISHED in every row of both tables.
    #[test]
    fn established_ack_stays_in_every_row() {
        for flags in 0..=u8::MAX {
            if tcp_state_idx(flags) != Some(2) {
                continue;
            }
            for dir in [StateDir::Input, StateDir::Output, StateDir::InputOnly] {
                assert_eq!(
                    tcp_next(dir, flags, ESTABLISHED),
                    ESTABLISHED,
                    "{dir:?} {flags:#x}"
                );
                assert_eq!(tcp_next_secure(dir, flags, ESTABLISHED), ESTABLISHED);
                for secure in [false, true] {
                    let n = next_state_with(secure, proto::TCP, dir, flags, ESTABLISHED);
                    assert_eq!(n, ESTABLISHED);
                }
            }
        }
    }

    /// NAT handshake and close, walking INPUT/OUTPUT rows.
    #[test]
    fn nat_walk() {
        let steps: &[(StateDir, u8, u8)] = &[
            (StateDir::Input, SYN, SYN_RECV),
            (StateDir::Output, SYN | ACK, SYN_RECV),
            (StateDir::Input, ACK, ESTABLISHED),
            (StateDir::Input, ACK, ESTABLISHED),
            (StateDir::Input, FIN | ACK, CLOSE_WAIT),
            (StateDir::Output, ACK, CLOSE_WAIT),
            (StateDir::Output, FIN | ACK, TIME_WAIT),
            (StateDir::Input, ACK, TIME_WAIT),
        ];
        let mut s = NONE;
        for &(d, f, want) in steps {
            s = tcp_next(d, f, s);
            assert_eq!(s, want, "{d:?} {f:#x}");
        }
        // Server closes first.
        let mut s = ESTABLISHED;
        s = tcp_next(StateDir::Output, FIN | ACK, s);
        assert_eq!(s, FIN_WAIT);
        s = tcp_next(StateDir::Input, FIN | ACK, s);
        assert_eq!(s, TIME_WAIT);
    }

    /// DR: only client packets, INPUT_ONLY row.
    #[test]
    fn dr_walk() {
        let mut s = NONE;
        for (f, want) in [
            (SYN, SYN_RECV),
            (ACK, ESTABLISHED),
            (FIN | ACK, FIN_WAIT),
            (ACK, FIN_WAIT),
            (RST, CLOSE),
        ] {
            s = tcp_next(StateDir::InputOnly, f, s);
            assert_eq!(s, want);
        }
        // The rows differ: FIN on ESTABLISHED and RST on SYNACK.
        assert_eq!(tcp_next(StateDir::Input, FIN, ESTABLISHED), CLOSE_WAIT);
        assert_eq!(tcp_next(StateDir::InputOnly, FIN, ESTABLISHED), FIN_WAIT);
        assert_eq!(tcp_next(StateDir::Input, RST, SYNACK), SYN_RECV);
    }

    #[test]
    fn secure_tcp_establishes_only_after_the_servers_syn_ack() {
        use crate::wire::tcp::flags::{ACK, SYN};
        // A spoofed client: SYN then ACK without the server's SYN+ACK stays half-open.
        let s = tcp_next_secure(StateDir::Input, SYN, NONE);
        assert_eq!(s, SYN_RECV);
        assert_eq!(tcp_next_secure(StateDir::Input, ACK, s), SYN_RECV);
        assert_eq!(tcp_next(StateDir::Input, ACK, s), ESTABLISHED);
        // A real handshake: SYN, server SYN+ACK (SYNACK), client ACK.
        let s = tcp_next_secure(StateDir::Output, SYN | ACK, s);
        assert_eq!(s, SYNACK);
        assert_eq!(tcp_next_secure(StateDir::Input, ACK, s), SYNACK);
        assert_eq!(tcp_next_secure(StateDir::Output, ACK, s), ESTABLISHED);
        // An ACK with no state closes.
        assert_eq!(tcp_next_secure(StateDir::Input, ACK, NONE), CLOSE);
        assert_eq!(tcp_next(StateDir::InputOnly, RST, SYNACK), CLOSE);
    }

    #[test]
    fn timeouts_and_names() {
        let t = Timeouts {
            tcp: 7,
            tcp_fin: 8,
            udp: 9,
        };
        assert_eq!(timeout_ms(proto::TCP, ESTABLISHED, &t), 7000);
        assert_eq!(timeout_ms(proto::TCP, FIN_WAIT, &t), 8000);
        assert_eq!(timeout_ms(proto::UDP, UDP_NORMAL, &t), 9000);
        let d = Timeouts::default();
        let want = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120];
        for (s, w) in want.iter().enumerate() {
            assert_eq!(timeout_ms(proto::TCP, s as u8, &d), w * 1000);
        }
        assert_eq!(state_name(proto::TCP, SYN_RECV, false), "SYN_RECV");
        assert_eq!(state_name(proto::UDP, 0, false), "UDP");
        assert_eq!(state_name(proto::TCP, 0, true), "NONE");
        assert_eq!(state_name(0, ctpl::ASSURED, true), "ASSURED");
        let active: Vec<u8> = (0..COUNT as u8).filter(|&s| tcp_active(s)).collect();
        assert_eq!(active, vec![ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK]);
        assert!(!is_active(proto::UDP, UDP_NORMAL));
    }
}
