//! The bare AF_XDP forwarder: the I/O floor xvs is measured against. It moves frames from
//! interface A to interface B through one shared UMEM (no copy), rewriting the Ethernet source
//! to B's MAC and the destination to `--dst-mac`; nothing else is parsed or changed. Frames
//! arriving on B go back to A the same way if `--dst-mac-a` is given, else they are dropped.
//! It busy-polls on the calling core (pin it with `taskset`) and prints the forwarded pps
//! every second.
//!
//! Two helper modes make a complete measurement without other tools:
//! - `--gen IF --dst-mac MAC [--flows N]`: floods 64-byte UDP frames (198.18.0.1 ->
//!   198.18.1.1, source port varying over N flows, UDP checksum 0) out of IF;
//! - `--sink IF`: counts and drops everything received on IF (sleeping while its ring fills, so
//!   it can share the generator's core).
//!
//! ```text
//! xdpfwd FWD_IF_A FWD_IF_B --dst-mac MAC [--dst-mac-a MAC] [--skb] [--secs N]
//! xdpfwd --gen IF --dst-mac MAC [--flows N] [--skb] [--secs N]
//! xdpfwd --sink IF [--skb] [--secs N]
//! ```
//! Needs root and `--features afxdp`.
//!
//! Measuring the floor (what the afxdp branch report quotes): namespaces G and S, veths
//! `g0`-`f0` and `s0`-`f1` with `f0`/`f1` in the root namespace, then
//! ```text
//! ip netns exec S taskset -c 0 xdpfwd --sink s0 &                     # counts deliveries
//! taskset -c 1 xdpfwd f0 f1 --dst-mac <s0 MAC> &                      # the forwarder
//! ip netns exec G taskset -c 0 xdpfwd --gen g0 --dst-mac <f0 MAC> --secs 10
//! ```
//! and read the steady-state `forwarded` lines (and S's `rx_packets`); `xdpfwd-bench.sh` next to
//! this file does all of it and cleans up. On veth the receiving
//! side's XDP and copy run in the sender's softirq, so the generator core also pays for the
//! forwarder's RX and the forwarder core for the sink's RX.

#[cfg(feature = "afxdp")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    afxdp::main()
}

#[cfg(not(feature = "afxdp"))]
fn main() {
    eprintln!("xdpfwd: build with `--features afxdp`");
    std::process::exit(1);
}

#[cfg(feature = "afxdp")]
mod afxdp {
    use std::time::{Duration, Instant};

    use xvs_dataplane::io::afxdp::{AfXdp, AfXdpOpts, PortConf, XdpMode};
    use xvs_dataplane::io::{BATCH, Desc, PacketIo};

    type Res<T> = Result<T, Box<dyn std::error::Error>>;

    #[derive(Default)]
    struct Args {
        ifaces: Vec<String>,
        gen_if: Option<String>,
        sink_if: Option<String>,
        dst_mac: Option<[u8; 6]>,
        dst_mac_a: Option<[u8; 6]>,
        flows: u16,
        skb: bool,
        secs: u64,
    }

    fn mac(s: &str) -> Res<[u8; 6]> {
        let v: Vec<u8> = s
            .split(':')
            .map(|h| u8::from_str_radix(h, 16))
            .collect::<Result<_, _>>()?;
        v.try_into().map_err(|_| format!("bad MAC {s}").into())
    }

    fn parse() -> Res<Args> {
        let mut a = Args {
            flows: 4096,
            secs: u64::MAX,
            ..Args::default()
        };
        let mut it = std::env::args().skip(1);
        while let Some(x) = it.next() {
            let mut val = || it.next().ok_or_else(|| format!("{x} needs a value"));
            match x.as_str() {
                "--gen" => a.gen_if = Some(val()?),
                "--sink" => a.sink_if = Some(val()?),
                "--dst-mac" => a.dst_mac = Some(mac(&val()?)?),
                "--dst-mac-a" => a.dst_mac_a = Some(mac(&val()?)?),
                "--flows" => a.flows = val()?.parse()?,
                "--secs" => a.secs = val()?.parse()?,
                "--skb" => a.skb = true,
                s if s.starts_with('-') => return Err(format!("unknown option {s}").into()),
                s => a.ifaces.push(s.to_string()),
            }
        }
        Ok(a)
    }

    fn open(ifaces: &[&str], skb: bool) -> Res<AfXdp> {
        let ports: Vec<PortConf> = ifaces
            .iter()
            .map(|i| PortConf {
                ifname: (*i).to_string(),
                queue: 0,
            })
            .collect();
        let opts = AfXdpOpts {
            xdp_mode: if skb { XdpMode::Skb } else { XdpMode::Native },
            ..AfXdpOpts::default()
        };
        Ok(AfXdp::open(&ports, &opts)?)
    }

    /// Prints the rate once a second; returns false when the run is over.
    struct Meter {
        what: &'static str,
        start: Instant,
        last: Instant,
        count: u64,
        at_last: u64,
        secs: u64,
    }

    impl Meter {
        fn new(what: &'static str, secs: u64) -> Self {
            let now = Instant::now();
            Self {
                what,
                start: now,
                last: now,
                count: 0,
                at_last: 0,
                secs,
            }
        }

        fn tick(&mut self) -> bool {
            let now = Instant::now();
            if now.duration_since(self.last) >= Duration::from_secs(1) {
                let dt = now.duration_since(self.last).as_secs_f64();
                let pps = (self.count - self.at_last) as f64 / dt;
                println!("{} {:.0} pps (total {})", self.what, pps, self.count);
                self.last = now;
                self.at_last = self.count;
            }
            now.duration_since(self.start).as_secs() < self.secs
        }
    }

    pub(super) fn main() -> Res<()> {
        let a = parse()?;
        if let Some(i) = a.gen_if.clone() {
            return generate(&i, &a);
        }
        if let Some(i) = a.sink_if.clone() {
            return sink(&i, &a);
        }
        let [ia, ib] = a.ifaces.as_slice() else {
            return Err("usage: xdpfwd IF_A IF_B --dst-mac MAC [--dst-mac-a MAC]".into());
        };
        let dst_b = a.dst_mac.ok_or("--dst-mac is required")?;
        let mut io = open(&[ia, ib], a.skb)?;
        let (mac_a, mac_b) = (io.mac(0), io.mac(1));
        let mut m = Meter::new("forwarded", a.secs);
        let mut descs = [Desc::default(); BATCH];
        let mut turn = 0u32;
        loop {
            let n = io.rx_burst(&mut descs);
            let mut keep = 0;
            for i in 0..n {
                let mut d = descs[i];
                // A -> B always; B -> A only when asked.
                let (src, dst) = match (d.port, a.dst_mac_a) {
                    (0, _) => (mac_b, dst_b),
                    (_, Some(da)) => (mac_a, da),
                    _ => {
                        io.recycle(&[d]);
                        continue;
                    }
                };
                let mut f = io.frame(&mut d);
                if let Some(eth) = f.data_mut().get_mut(..12) {
                    eth[..6].copy_from_slice(&dst);
                    eth[6..].copy_from_slice(&src);
                }
                f.set_port(f.port() ^ 1);
                descs[keep] = d;
                keep += 1;
            }
            let sent = io.tx_burst(&descs[..keep]);
            io.recycle(&descs[sent..keep]);
            io.service();
            m.count += sent as u64;
            turn = turn.wrapping_add(1);
            if turn.is_multiple_of(64) && !m.tick() {
                break;
            }
        }
        println!("frames {:?}", io.frame_counts());
        for p in 0..2 {
            println!(
                "port {p}: {:?}, tx kicks {}",
                io.xsk_stats(p)?,
                io.tx_kicks(p)
            );
        }
        Ok(())
    }

    fn generate(ifname: &str, a: &Args) -> Res<()> {
        let dst = a.dst_mac.ok_or("--dst-mac is required")?;
        let mut io = open(&[ifname], a.skb)?;
        let mut tmpl = Vec::with_capacity(64);
        etherparse::PacketBuilder::ethernet2(io.mac(0), dst)
            .ipv4([198, 18, 0, 1], [198, 18, 1, 1], 64)
            .udp(1024, 9)
            .write(&mut tmpl, &[0u8; 18])?;
        tmpl[40..42].copy_from_slice(&[0, 0]); // UDP checksum 0: none, so ports can vary
        let mut m = Meter::new("generated", a.secs);
        let mut descs = [Desc::default(); BATCH];
        let mut flow = 0u16;
        let mut turn = 0u32;
        loop {
            let mut n = 0;
            while n < BATCH {
                let Some(mut d) = io.alloc(0) else { break };
                let mut f = io.frame(&mut d);
                if f.set_len(tmpl.len()).is_ok() {
                    let b = f.data_mut();
                    b.copy_from_slice(&tmpl);
                    b[34..36].copy_from_slice(&(1024 + flow).to_be_bytes());
                }
                flow = (flow + 1) % a.flows.max(1);
                descs[n] = d;
                n += 1;
            }
            let sent = io.tx_burst(&descs[..n]);
            io.recycle(&descs[sent..n]);
            io.service();
            m.count += sent as u64;
            turn = turn.wrapping_add(1);
            if turn.is_multiple_of(64) && !m.tick() {
                break;
            }
        }
        Ok(())
    }

    fn sink(ifname: &str, a: &Args) -> Res<()> {
        let mut io = open(&[ifname], a.skb)?;
        let mut m = Meter::new("received", a.secs);
        let mut descs = [Desc::default(); BATCH];
        let mut turn = 0u32;
        loop {
            let n = io.rx_burst(&mut descs);
            io.recycle(&descs[..n]);
            io.service();
            m.count += n as u64;
            if n < BATCH / 2 {
                // The sink shares a core with the generator: leave it the CPU while the ring
                // fills (the RX ring holds 2048 frames, ~2 ms at 1 Mpps).
                std::thread::sleep(Duration::from_micros(100));
            }
            turn = turn.wrapping_add(1);
            if turn.is_multiple_of(64) && !m.tick() {
                break;
            }
        }
        Ok(())
    }
}
