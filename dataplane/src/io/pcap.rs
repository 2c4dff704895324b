//! `PcapIo`: replay a pcap file through the pipeline and write what it transmits to another
//! pcap file, like DPDK's pcap PMD. It is how the whole data plane runs offline (`xvsd
//! --pcap-in/--pcap-out`) and how fixtures are replayed byte for byte.
//!
//! Frames are read lazily into a [`MemIo`] pool, so the worker sees the same chunk layout as on
//! a NIC. [`PcapIo::prepare`] loads one burst of frames sharing a timestamp and advances the
//! clock ([`PcapIo::now_ms`]) before each worker turn, so pcap timestamps drive every timeout. Transmitted frames
//! are written in transmit order with the timestamp of the burst that produced them.
//!
//! Invariants: the output is a valid classic pcap (Ethernet link type) even when the input was
//! empty. This backend does file I/O per burst and is never used on a live path.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::mem::MemIo;
use super::{Desc, Frame, PacketIo};

/// Errors opening or reading pcap files.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a classic pcap file.
    #[error("{0}: not a pcap file (bad magic {1:#010x}; pcapng is not supported)")]
    BadMagic(String, u32),
    /// Not Ethernet.
    #[error("{0}: link type {1} is not Ethernet (1)")]
    LinkType(String, u32),
    /// A record header claims more bytes than a frame can hold.
    #[error("{0}: record {1} is malformed (caplen {2})")]
    BadRecord(String, u64, u32),
}

const LINKTYPE_ETHERNET: u32 = 1;
const SNAPLEN: u32 = 65535;

/// Reads frames from a pcap file.
#[derive(Debug)]
pub struct PcapReader {
    path: String,
    r: BufReader<File>,
    swapped: bool,
    nanos: bool,
    records: u64,
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Timestamp in microseconds since the epoch.
    pub ts_us: u64,
    /// The frame.
    pub data: Vec<u8>,
}

impl PcapReader {
    /// Open a pcap file and check its header.
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        let p = path.display().to_string();
        let io = |source| PcapError::Io {
            path: p.clone(),
            source,
        };
        let mut r = BufReader::new(File::open(path).map_err(io)?);
        let mut hdr = [0u8; 24];
        r.read_exact(&mut hdr).map_err(io)?;
        let magic = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let (swapped, nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            m => return Err(PcapError::BadMagic(p, m)),
        };
        let rd = |b: [u8; 4]| {
            if swapped {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let link = rd([hdr[20], hdr[21], hdr[22], hdr[23]]);
        if link != LINKTYPE_ETHERNET {
            return Err(PcapError::LinkType(p, link));
        }
        Ok(Self {
            path: p,
            r,
            swapped,
            nanos,
            records: 0,
        })
    }

    /// The next record, `None` at the end of the file (a truncated last record ends it too).
    pub fn next_record(&mut self) -> Result<Option<Record>, PcapError> {
        let mut h = [0u8; 16];
        if self.r.read_exact(&mut h).is_err() {
            return Ok(None);
        }
        let rd = |b: &[u8]| {
            let a = [b[0], b[1], b[2], b[3]];
            if self.swapped {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        let (sec, frac, caplen) = (rd(&h[0..4]), rd(&h[4..8]), rd(&h[8..12]));
        self.records += 1;
        if caplen > SNAPLEN * 4 {
            return Err(PcapError::BadRecord(
                self.path.clone(),
                self.records,
                caplen,
            ));
        }
        let mut data = vec![0u8; caplen as usize];
        if self.r.read_exact(&mut data).is_err() {
            return Ok(None);
        }
        let us = if self.nanos {
            u64::from(frac) / 1000
        } else {
            u64::from(frac)
        };
        Ok(Some(Record {
            ts_us: u64::from(sec) * 1_000_000 + us,
            data,
        }))
    }
}

/// Writes frames to a classic (microsecond) pcap file.
#[derive(Debug)]
pub struct PcapWriter {
    path: String,
    w: BufWriter<File>,
}

impl PcapWriter {
    /// Create (truncate) a pcap file and write its header.
    pub fn create(path: &Path) -> Result<Self, PcapError> {
        let p = path.display().to_string();
        let io = |source| PcapError::Io {
            path: p.clone(),
            source,
        };
        let mut w = BufWriter::new(File::create(path).map_err(io)?);
        let mut hdr = Vec::with_capacity(24);
        hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        hdr.extend_from_slice(&2u16.to_le_bytes());
        hdr.extend_from_slice(&4u16.to_le_bytes());
        hdr.extend_from_slice(&0i32.to_le_bytes());
        hdr.extend_from_slice(&0u32.to_le_bytes());
        hdr.extend_from_slice(&SNAPLEN.to_le_bytes());
        hdr.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        w.write_all(&hdr).map_err(io)?;
        Ok(Self { path: p, w })
    }

    /// Append one frame.
    #[allow(clippy::cast_possible_truncation)] // seconds fit u32 until 2106; frames < 64 KiB
    pub fn write(&mut self, ts_us: u64, data: &[u8]) -> Result<(), PcapError> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        let io = |source| PcapError::Io {
            path: self.path.clone(),
            source,
        };
        self.w.write_all(&h).map_err(io)?;
        self.w.write_all(data).map_err(io)
    }

    /// Flush buffered records.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.w.flush().map_err(|source| PcapError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Pcap-file packet I/O with one port.
#[derive(Debug)]
pub struct PcapIo {
    mem: MemIo,
    reader: PcapReader,
    writer: PcapWriter,
    pending: Option<Record>,
    now_us: u64,
    eof: bool,
    /// The first write or read error, if any (the worker has no error path for I/O).
    pub error: Option<PcapError>,
    /// Frames written.
    pub written: u64,
    /// Input frames skipped because they did not fit a chunk.
    pub oversized: u64,
}

impl PcapIo {
    /// Replay `input`, write to `output`; `mac` is the port's address, `mtu` its MTU.
    pub fn open(input: &Path, output: &Path, mac: [u8; 6], mtu: usize) -> Result<Self, PcapError> {
        let reader = PcapReader::open(input)?;
        let writer = PcapWriter::create(output)?;
        let mut mem = MemIo::new(1024, vec![mac]);
        mem.set_mtu(mtu);
        Ok(Self {
            mem,
            reader,
            writer,
            pending: None,
            now_us: 0,
            eof: false,
            error: None,
            written: 0,
            oversized: 0,
        })
    }

    /// The clock: the timestamp of the frames of the current burst, in milliseconds.
    #[must_use]
    pub fn now_ms(&self) -> u64 {
        self.now_us / 1000
    }

    /// Whether the input is exhausted and every frame was handed out.
    #[must_use]
    pub fn finished(&self) -> bool {
        self.eof && self.pending.is_none() && self.mem.rx_pending() == 0
    }

    /// Flush the output file.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        self.writer.flush()
    }

    /// Load the next group of input frames that share one timestamp (millisecond resolution,
    /// at most one burst) and advance the clock to it. Returns false when the input is
    /// exhausted. Call it before each worker turn, then read [`Self::now_ms`].
    pub fn prepare(&mut self) -> bool {
        let mut first_ms = None;
        let mut loaded = 0;
        while loaded < super::BATCH {
            let Some(rec) = self.peek() else { break };
            let (ts, ms) = (rec.ts_us, rec.ts_us / 1000);
            if first_ms.is_some_and(|f| f != ms) {
                break;
            }
            first_ms = Some(ms);
            let Some(rec) = self.pending.take() else {
                break;
            };
            self.now_us = ts;
            if self.mem.inject(0, &rec.data) {
                loaded += 1;
            } else {
                self.oversized += 1;
            }
        }
        first_ms.is_some()
    }

    fn peek(&mut self) -> Option<&Record> {
        if self.pending.is_none() && !self.eof {
            match self.reader.next_record() {
                Ok(Some(r)) => self.pending = Some(r),
                Ok(None) => self.eof = true,
                Err(e) => {
                    self.error.get_or_insert(e);
                    self.eof = true;
                }
            }
        }
        self.pending.as_ref()
    }
}

impl PacketIo for PcapIo {
    fn ports(&self) -> usize {
        1
    }

    fn rx_burst(&mut self, descs: &mut [Desc]) -> usize {
        self.mem.rx_burst(descs)
    }

    fn frame<'a>(&'a mut self, desc: &'a mut Desc) -> Frame<'a> {
        self.mem.frame(desc)
    }

    fn tx_burst(&mut self, descs: &[Desc]) -> usize {
        let n = self.mem.tx_burst(descs);
        for (_, data) in self.mem.take_tx() {
            if let Err(e) = self.writer.write(self.now_us, &data) {
                self.error.get_or_insert(e);
            }
            self.written += 1;
        }
        n
    }

    fn recycle(&mut self, descs: &[Desc]) {
        self.mem.recycle(descs);
    }

    fn alloc(&mut self, port: u16) -> Option<Desc> {
        self.mem.alloc(port)
    }

    fn service(&mut self) {}

    fn mac(&self, port: u16) -> [u8; 6] {
        self.mem.mac(port)
    }

    fn mtu(&self, port: u16) -> usize {
        self.mem.mtu(port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_output_reads_back() {
        let dir = std::env::temp_dir().join(format!("xvs-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.pcap");
        let mut w = PcapWriter::create(&p).unwrap();
        w.write(1_500_000, &[1, 2, 3]).unwrap();
        w.write(2_000_001, &[4; 60]).unwrap();
        w.flush().unwrap();
        drop(w);
        let mut r = PcapReader::open(&p).unwrap();
        assert_eq!(
            r.next_record().unwrap(),
            Some(Record {
                ts_us: 1_500_000,
                data: vec![1, 2, 3]
            })
        );
        assert_eq!(r.next_record().unwrap().unwrap().ts_us, 2_000_001);
        assert_eq!(r.next_record().unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_magic_is_named() {
        let dir = std::env::temp_dir().join(format!("xvs-pcap-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.pcap");
        std::fs::write(&p, [0u8; 24]).unwrap();
        let e = PcapReader::open(&p).unwrap_err().to_string();
        assert!(e.contains("not a pcap file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bursts_do_not_mix_timestamps() {
        let dir = std::env::temp_dir().join(format!("xvs-pcap-b-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (i, o) = (dir.join("in.pcap"), dir.join("out.pcap"));
        let mut w = PcapWriter::create(&i).unwrap();
        for ts in [1000, 1000, 5000] {
            w.write(ts, &[0; 60]).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let mut io = PcapIo::open(&i, &o, [0; 6], 1500).unwrap();
        let mut d = [Desc::default(); 64];
        assert!(io.prepare());
        assert_eq!(io.rx_burst(&mut d), 2);
        assert_eq!(io.now_ms(), 1);
        assert_eq!(io.tx_burst(&d[..2]), 2);
        assert!(io.prepare());
        assert_eq!(io.rx_burst(&mut d), 1);
        assert_eq!(io.now_ms(), 5);
        io.recycle(&d[..1]);
        assert!(!io.prepare());
        assert_eq!(io.rx_burst(&mut d), 0);
        assert!(io.finished());
        io.flush().unwrap();
        let mut r = PcapReader::open(&o).unwrap();
        assert!(r.next_record().unwrap().is_some());
        assert!(r.next_record().unwrap().is_some());
        assert!(r.next_record().unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
