//! Opus in Ogg (RFC 7845), written and read back, streaming: 20 ms packets from libopus (the
//! reference codec, through the `opus` crate, built statically from source by `audiopus_sys`),
//! one Ogg page per second of audio, granule positions in 48 kHz samples with the encoder's
//! look-ahead as pre-skip and the exact length as end trimming, so decoders (`opusdec`,
//! ffmpeg, browsers) give back exactly as many samples as went in.
//!
//! libopus was chosen over a pure-Rust encoder: it is the reference, and no pure-Rust Opus
//! encoder on crates.io covers SILK (the speech mode that matters at 8 kHz) at this writing.

use std::io::{Read, Seek, Write};

use ogg::{PacketReader, PacketWriteEndInfo, PacketWriter};

/// The rates libopus codes at; any other input is resampled to the next one up.
pub const OPUS_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];
/// Packets per Ogg page (50 × 20 ms = 1 s, what libopusenc does by default).
const PACKETS_PER_PAGE: u32 = 50;
/// The largest packet libopus is asked for (RFC 6716 caps a frame at 1275 bytes).
const MAX_PACKET: usize = 1500;
/// Stream serial number: one logical stream per file, so any fixed number will do (and the
/// output stays the same for the same input, which `verify` relies on).
const SERIAL: u32 = 0x4341_4c4c;
/// The first bytes of every Ogg page.
pub const MAGIC: &[u8; 4] = b"OggS";

/// The rate a `rate` Hz input is coded at.
pub fn coded_rate(rate: u32) -> u32 {
    OPUS_RATES
        .iter()
        .copied()
        .find(|r| *r >= rate)
        .unwrap_or(48000)
}

/// What can go wrong writing or reading Ogg Opus.
#[derive(Debug, thiserror::Error)]
pub enum OpusError {
    /// The sink or source failed.
    #[error("Ogg Opus I/O: {0}")]
    Io(#[from] std::io::Error),
    /// libopus refused.
    #[error("libopus: {0}")]
    Codec(#[from] opus::Error),
    /// The stream is not Ogg Opus as RFC 7845 defines it.
    #[error("Ogg Opus: {0}")]
    Format(String),
}

fn channels_of(n: usize) -> Result<opus::Channels, OpusError> {
    match n {
        1 => Ok(opus::Channels::Mono),
        2 => Ok(opus::Channels::Stereo),
        n => Err(OpusError::Format(format!(
            "{n} channels (mono and stereo are written)"
        ))),
    }
}

/// The 19-byte identification header (RFC 7845 §5.1), channel mapping family 0.
fn opus_head(channels: u8, pre_skip: u16, input_rate: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&input_rate.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// The comment header (§5.2): the vendor string and one comment naming this tool.
fn opus_tags() -> Vec<u8> {
    let vendor = opus::version().as_bytes();
    let comment = concat!(
        "ENCODER=call-recording-shrinker ",
        env!("CARGO_PKG_VERSION")
    )
    .as_bytes();
    let mut t = Vec::with_capacity(24 + vendor.len() + comment.len());
    t.extend_from_slice(b"OpusTags");
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor);
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&(comment.len() as u32).to_le_bytes());
    t.extend_from_slice(comment);
    t
}

/// A streaming Ogg Opus writer of 16-bit samples at one of [`OPUS_RATES`].
pub struct OggOpusWriter<W: Write> {
    packets: PacketWriter<'static, Count<W>>,
    encoder: opus::Encoder,
    channels: usize,
    /// Samples per channel per packet (20 ms).
    frame: usize,
    /// 48 kHz samples per coded sample.
    scale: u64,
    pending: Vec<i16>,
    lookahead: u64,
    frames_in: u64,
    frames_coded: u64,
    packets_written: u32,
    /// The last packet, held back so that the final one can end the stream.
    held: Option<(Vec<u8>, u64)>,
    buf: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for OggOpusWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OggOpusWriter")
            .field("channels", &self.channels)
            .field("frames_in", &self.frames_in)
            .finish()
    }
}

/// A sink that counts the bytes written through it.
#[derive(Debug, Default)]
struct Count<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Count<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> OggOpusWriter<W> {
    /// Starts a stream at `rate` Hz (one of [`OPUS_RATES`]) of `channels` channels, coded at
    /// `bitrate` bits per second in all; `input_rate` is recorded in the header (the rate the
    /// recording had before any resampling). Writes both headers.
    pub fn new(
        out: W,
        rate: u32,
        channels: u16,
        bitrate: u32,
        input_rate: u32,
    ) -> Result<Self, OpusError> {
        if !OPUS_RATES.contains(&rate) {
            return Err(OpusError::Format(format!(
                "{rate} Hz is not a rate libopus codes at"
            )));
        }
        let channels = usize::from(channels);
        let layout = channels_of(channels)?;
        let mut encoder = opus::Encoder::new(rate, layout, opus::Application::Voip)?;
        encoder.set_bitrate(opus::Bitrate::Bits(bitrate as i32))?;
        encoder.set_signal(opus::Signal::Voice)?;
        if channels == 2 {
            // Two people on two channels: never let the encoder fold them into one.
            encoder.set_force_channels(Some(opus::Channels::Stereo))?;
        }
        let lookahead = encoder.get_lookahead()? as u64;
        let scale = u64::from(48000 / rate);
        let pre_skip = lookahead * scale;
        let mut packets = PacketWriter::new(Count {
            inner: out,
            written: 0,
        });
        packets.write_packet(
            opus_head(channels as u8, pre_skip as u16, input_rate),
            SERIAL,
            PacketWriteEndInfo::EndPage,
            0,
        )?;
        packets.write_packet(opus_tags(), SERIAL, PacketWriteEndInfo::EndPage, 0)?;
        let frame = rate as usize / 50;
        Ok(OggOpusWriter {
            packets,
            encoder,
            channels,
            frame,
            scale,
            pending: Vec::with_capacity(frame * channels),
            lookahead,
            frames_in: 0,
            frames_coded: 0,
            packets_written: 0,
            held: None,
            buf: vec![0; MAX_PACKET],
        })
    }

    /// Adds interleaved samples (whole frames, across calls).
    pub fn push(&mut self, interleaved: &[i16]) -> Result<(), OpusError> {
        self.frames_in += (interleaved.len() / self.channels) as u64;
        let packet = self.frame * self.channels;
        let mut rest = interleaved;
        while !rest.is_empty() {
            let take = (packet - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == packet {
                self.encode_pending(None)?;
            }
        }
        Ok(())
    }

    fn encode_pending(&mut self, end: Option<u64>) -> Result<(), OpusError> {
        self.pending.resize(self.frame * self.channels, 0);
        let n = self.encoder.encode(&self.pending, &mut self.buf)?;
        self.pending.clear();
        self.frames_coded += self.frame as u64;
        // A page's granule position counts every sample decoded by the end of it, the
        // pre-skip included (RFC 7845 §4): the coded samples so far, at 48 kHz.
        let mut granule = self.frames_coded * self.scale;
        if let Some(end) = end {
            granule = granule.min(end);
        }
        if let Some((data, g)) = self.held.replace((self.buf[..n].to_vec(), granule)) {
            self.packets_written += 1;
            let info = if self.packets_written.is_multiple_of(PACKETS_PER_PAGE) {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.packets.write_packet(data, SERIAL, info, g)?;
        }
        Ok(())
    }

    /// Codes what is left and the encoder's look-ahead, ends the stream; returns the sink and
    /// the bytes written.
    pub fn finish(mut self) -> Result<(W, u64), OpusError> {
        let end = (self.lookahead + self.frames_in) * self.scale; // pre-skip + the input
        // Until the coded samples cover the input plus the look-ahead (the decoder drops the
        // first pre-skip samples), and at least one packet.
        while self.frames_coded < self.frames_in + self.lookahead || self.held.is_none() {
            self.encode_pending(Some(end))?;
        }
        let (data, _) = self.held.take().expect("at least one packet");
        self.packets
            .write_packet(data, SERIAL, PacketWriteEndInfo::EndStream, end)?;
        let mut sink = self.packets.into_inner();
        sink.flush()?;
        Ok((sink.inner, sink.written))
    }
}

/// What [`decode`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusInfo {
    /// Channels.
    pub channels: u16,
    /// The rate decoded at.
    pub rate: u32,
    /// The rate the header records for the original input.
    pub input_rate: u32,
    /// Frames decoded (pre-skip and end trimming applied).
    pub frames: u64,
}

/// Decodes an Ogg Opus stream into interleaved 16-bit samples, handed to `take` packet by
/// packet: at the input rate the header records when libopus decodes at it, else 48 kHz.
pub fn decode<R: Read + Seek>(
    input: R,
    mut take: impl FnMut(&[i16]) -> Result<(), OpusError>,
) -> Result<OpusInfo, OpusError> {
    let mut reader = PacketReader::new(input);
    let bad = |m: &str| OpusError::Format(m.to_string());
    let ogg_err = |e: ogg::OggReadError| match e {
        ogg::OggReadError::ReadError(io) => OpusError::Io(io),
        other => OpusError::Format(other.to_string()),
    };
    let head = reader
        .read_packet()
        .map_err(ogg_err)?
        .ok_or_else(|| bad("no identification header"))?;
    let h = &head.data;
    if h.len() < 19 || &h[..8] != b"OpusHead" {
        return Err(bad("the first packet is not an OpusHead"));
    }
    if h[8] & 0xF0 != 0 {
        return Err(OpusError::Format(format!("OpusHead version {}", h[8])));
    }
    let channels = h[9];
    let pre_skip = u64::from(u16::from_le_bytes([h[10], h[11]]));
    let input_rate = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if h[18] != 0 {
        return Err(OpusError::Format(format!(
            "channel mapping family {} (this tool writes family 0)",
            h[18]
        )));
    }
    let layout = channels_of(usize::from(channels))?;
    let rate = if OPUS_RATES.contains(&input_rate) {
        input_rate
    } else {
        48000
    };
    let scale = u64::from(48000 / rate);
    let tags = reader
        .read_packet()
        .map_err(ogg_err)?
        .ok_or_else(|| bad("no comment header"))?;
    if !tags.data.starts_with(b"OpusTags") {
        return Err(bad("the second packet is not OpusTags"));
    }
    let mut decoder = opus::Decoder::new(rate, layout)?;
    let ch = usize::from(channels);
    let mut pcm = vec![0i16; 5760 * ch];
    // Samples at the decode rate: still to skip at the start, and decoded so far (at 48 kHz
    // granule units, to compare with the pages' granule positions).
    let mut skip = pre_skip / scale;
    let mut decoded48 = 0u64;
    let mut frames = 0u64;
    let mut ended = false;
    while let Some(packet) = reader.read_packet().map_err(ogg_err)? {
        if ended {
            return Err(bad("packets after the end of the stream"));
        }
        let n = decoder.decode(&packet.data, &mut pcm, false)?;
        decoded48 += n as u64 * scale;
        let mut keep = n;
        if packet.last_in_stream() {
            ended = true;
            let end = packet.absgp_page();
            if end < pre_skip || end > decoded48 {
                return Err(OpusError::Format(format!(
                    "end granule {end} outside the {decoded48} samples decoded"
                )));
            }
            let over = ((decoded48 - end) / scale) as usize;
            keep = n.saturating_sub(over);
        }
        let start = (skip as usize).min(keep);
        skip -= start as u64;
        if keep > start {
            take(&pcm[start * ch..keep * ch])?;
            frames += (keep - start) as u64;
        }
    }
    if !ended {
        return Err(bad("the stream ends without its last page (cut short?)"));
    }
    Ok(OpusInfo {
        channels: u16::from(channels),
        rate,
        input_rate,
        frames,
    })
}

/// Whether `bytes` start an Ogg stream.
pub fn is_ogg(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(rate: u32, channels: u16, samples: &[i16], bitrate: u32) -> Vec<u8> {
        let mut w = OggOpusWriter::new(Vec::new(), rate, channels, bitrate, rate).unwrap();
        for c in samples.chunks(333 * usize::from(channels)) {
            w.push(c).unwrap();
        }
        let (out, n) = w.finish().unwrap();
        assert_eq!(out.len() as u64, n);
        out
    }

    fn back(ogg: &[u8]) -> (OpusInfo, Vec<i16>) {
        let mut all = Vec::new();
        let info = decode(std::io::Cursor::new(ogg), |p| {
            all.extend_from_slice(p);
            Ok(())
        })
        .unwrap();
        (info, all)
    }

    fn tone(rate: u32, hz: [f64; 2], frames: usize, channels: usize) -> Vec<i16> {
        (0..frames * channels)
            .map(|i| {
                let t = (i / channels) as f64 / f64::from(rate);
                ((2.0 * std::f64::consts::PI * hz[i % channels] * t).sin() * 8000.0) as i16
            })
            .collect()
    }

    #[test]
    fn every_length_comes_back_exactly() {
        for frames in [0usize, 1, 159, 160, 161, 8000, 12_345] {
            for channels in [1u16, 2] {
                let input = tone(8000, [300.0, 700.0], frames, usize::from(channels));
                let ogg = encode(8000, channels, &input, 16000 * u32::from(channels));
                assert!(is_ogg(&ogg));
                let (info, pcm) = back(&ogg);
                assert_eq!(
                    (info.frames, info.channels, info.rate),
                    (frames as u64, channels, 8000)
                );
                assert_eq!(pcm.len(), frames * usize::from(channels));
            }
        }
    }

    #[test]
    fn granule_positions_count_the_samples_decoded_by_each_page() {
        let input = tone(8000, [300.0, 700.0], 8000 * 3 + 77, 1);
        let ogg = encode(8000, 1, &input, 16000);
        let mut reader = PacketReader::new(std::io::Cursor::new(&ogg));
        let (mut samples48, mut pages) = (0u64, Vec::new());
        for _ in 0..2 {
            reader.read_packet().unwrap();
        }
        while let Some(p) = reader.read_packet().unwrap() {
            samples48 += 960;
            if p.last_in_page() {
                pages.push((samples48, p.absgp_page(), p.last_in_stream()));
            }
        }
        let pre_skip = u64::from(u16::from_le_bytes([ogg[38], ogg[39]]));
        let (last, rest) = pages.split_last().unwrap();
        for (decoded, granule, end) in rest {
            assert_eq!((granule, end), (decoded, &false));
        }
        assert!(last.2, "the last page ends the stream");
        assert_eq!(last.1, pre_skip + (8000 * 3 + 77) * 6, "end trimming");
        assert!(last.1 <= last.0);
        assert_eq!(pages.len(), 4, "a page per second");
    }

    #[test]
    fn a_cut_stream_is_an_error_not_a_short_file() {
        let input = tone(8000, [300.0, 700.0], 80_000, 1);
        let ogg = encode(8000, 1, &input, 16000);
        let e = decode(std::io::Cursor::new(&ogg[..ogg.len() / 2]), |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Ogg"), "{e}");
        let e = decode(std::io::Cursor::new(&b"OggS garbage"[..]), |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Ogg Opus"), "{e}");
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let input = tone(16000, [300.0, 700.0], 20_000, 2);
        assert_eq!(
            encode(16000, 2, &input, 32000),
            encode(16000, 2, &input, 32000)
        );
    }

    #[test]
    fn rates_map_to_the_next_coded_rate() {
        assert_eq!(coded_rate(8000), 8000);
        assert_eq!(coded_rate(11025), 12000);
        assert_eq!(coded_rate(22050), 24000);
        assert_eq!(coded_rate(32000), 48000);
        assert_eq!(coded_rate(44100), 48000);
        assert_eq!(coded_rate(96000), 48000);
    }
}
