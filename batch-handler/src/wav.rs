//! Streaming RIFF/WAVE: a tolerant header reader fed in pieces, and the G.711 WAV header writer.
//!
//! Why not `hound` here: hound needs a blocking `Read` (our input is an async S3 body), stops on
//! an odd-sized chunk because it does not skip the pad byte, rejects streamed sizes
//! (`0xFFFFFFFF`), cannot read A-law/µ-law (so it could not recognise already-converted files),
//! and cannot write A-law at all (`audio.md` §3.3). The reader below walks chunks with pad
//! bytes, skips what it does not need without buffering it, and stops at the first byte of
//! audio, so the header of the output can be written before any audio arrives. hound is used
//! in tests and the demo to write ordinary PCM inputs, which it does well.

use crate::g711::Codec;

/// Largest `fmt ` chunk we accept; the biggest real one (EXTENSIBLE) is 40 bytes.
const MAX_FMT_LEN: u32 = 1024;

/// Byte length of the G.711 header we write (`audio.md` §3.2): RIFF, 18-byte fmt, fact, data.
pub const G711_HEADER_LEN: u64 = 58;

/// GUID tail shared by all WAVE_FORMAT_EXTENSIBLE sub-formats (`xxxx0000-0000-0010-8000-00aa00389b71`).
const GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// How samples are stored in the input's data chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Integer PCM (8-bit unsigned, 16/24/32-bit signed little-endian).
    Pcm,
    /// IEEE float, 32-bit.
    Float,
    /// Already G.711: converting again would only lose quality.
    G711(Codec),
}

/// The parts of the `fmt ` chunk that decide how the data chunk is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// Sample encoding.
    pub kind: SampleKind,
    /// 1 or 2 for inputs we convert.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Container bits per sample.
    pub bits: u16,
    /// Bytes per frame (all channels).
    pub block_align: u16,
}

impl Format {
    /// A short human description for result strings and metadata, e.g. `pcm_s16le 8000Hz 2ch`.
    pub fn describe(&self) -> String {
        let enc = match (self.kind, self.bits) {
            (SampleKind::Pcm, 8) => "pcm_u8".to_string(),
            (SampleKind::Pcm, b) => format!("pcm_s{b}le"),
            (SampleKind::Float, b) => format!("pcm_f{b}le"),
            (SampleKind::G711(c), _) => format!("pcm_{}", c.name()),
        };
        format!("{enc} {}Hz {}ch", self.sample_rate, self.channels)
    }
}

/// Where the audio is and how much of it there is, known before the first audio byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChunk {
    /// Format from the `fmt ` chunk.
    pub format: Format,
    /// Offset of the first audio byte in the object.
    pub offset: u64,
    /// Size the chunk header declares (0 and `0xFFFFFFFF` mean "to the end").
    pub declared_len: u32,
    /// Bytes of audio that will actually be read: the declared size, or what the object holds.
    pub len: u64,
}

impl DataChunk {
    /// Whole frames in the chunk; a trailing partial frame is dropped.
    pub fn frames(&self) -> u64 {
        self.len / u64::from(self.format.block_align)
    }

    /// Bytes of a trailing partial frame that cannot be converted.
    pub fn partial_frame_bytes(&self) -> u64 {
        self.len % u64::from(self.format.block_align)
    }

    /// How many bytes the header promised beyond the end of the object (a cut-off recording).
    pub fn missing_bytes(&self) -> u64 {
        match self.declared_len {
            0 | u32::MAX => 0,
            d => u64::from(d).saturating_sub(self.len),
        }
    }
}

/// Why a byte stream is not a WAV we can convert; each names the reason for the task result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// Zero-length object.
    #[error("empty object (0 bytes): not a WAV file")]
    Empty,
    /// First four bytes are not `RIFF`.
    #[error("not a WAV file: starts with {0} instead of \"RIFF\"")]
    NotRiff(String),
    /// A RIFF variant we do not read.
    #[error("unsupported container: {0}")]
    UnsupportedContainer(String),
    /// RIFF form type is not `WAVE`.
    #[error("not a WAV file: RIFF form type is {0}, not \"WAVE\"")]
    NotWave(String),
    /// The object ends before the audio starts.
    #[error("truncated WAV: object ends at byte {at} inside the {inside}")]
    Truncated {
        /// Object length.
        at: u64,
        /// What was being read.
        inside: String,
    },
    /// All chunks walked, no `data` chunk.
    #[error("invalid WAV: no data chunk in {0} bytes")]
    NoData(u64),
    /// `data` seen before `fmt `.
    #[error("invalid WAV: data chunk at byte {0} comes before any fmt chunk")]
    DataBeforeFmt(u64),
    /// Inconsistent or impossible `fmt ` fields.
    #[error("invalid WAV fmt chunk: {0}")]
    BadFmt(String),
    /// A well-formed WAV in a format we do not convert.
    #[error("unsupported audio format: {0}")]
    Unsupported(String),
    /// Output would not fit a classic RIFF (4 GiB).
    #[error("output of {0} bytes does not fit a RIFF file")]
    TooLarge(u64),
}

#[derive(Debug, Clone, Copy)]
enum State {
    Riff,
    ChunkHeader,
    Fmt(u32),
    Skip { id: [u8; 4], remaining: u64 },
    Done,
}

/// Reads a WAV header from pieces of a byte stream, up to the first byte of audio.
#[derive(Debug)]
pub struct HeaderReader {
    object_len: u64,
    offset: u64,
    state: State,
    buf: Vec<u8>,
    format: Option<Format>,
}

fn quoted(id: &[u8]) -> String {
    if id.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("\"{}\"", String::from_utf8_lossy(id))
    } else {
        let hex: Vec<String> = id.iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

impl HeaderReader {
    /// Starts reading an object of `object_len` bytes (needed to resolve streamed sizes).
    pub fn new(object_len: u64) -> Self {
        HeaderReader {
            object_len,
            offset: 0,
            state: State::Riff,
            buf: Vec::with_capacity(64),
            format: None,
        }
    }

    /// Consumes header bytes from `input`; returns how many it used and, once reached, the data chunk.
    ///
    /// The bytes after the returned count are the first audio bytes.
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Option<DataChunk>), WavError> {
        let mut used = 0;
        loop {
            match self.state {
                State::Done => return Ok((used, None)),
                State::Skip { id, remaining } => {
                    let n = remaining.min((input.len() - used) as u64);
                    used += n as usize;
                    self.offset += n;
                    if n == remaining {
                        self.state = State::ChunkHeader;
                    } else {
                        self.state = State::Skip {
                            id,
                            remaining: remaining - n,
                        };
                        return Ok((used, None));
                    }
                }
                state => {
                    let need = match state {
                        State::Riff => 12,
                        State::ChunkHeader => 8,
                        State::Fmt(size) => (size + (size & 1)) as usize,
                        _ => unreachable!(),
                    };
                    let take = (need - self.buf.len()).min(input.len() - used);
                    self.buf.extend_from_slice(&input[used..used + take]);
                    used += take;
                    self.offset += take as u64;
                    if self.buf.len() < need {
                        return Ok((used, None));
                    }
                    let field = std::mem::take(&mut self.buf);
                    if let Some(data) = self.on_field(state, &field)? {
                        self.state = State::Done;
                        return Ok((used, Some(data)));
                    }
                }
            }
        }
    }

    /// The error to report when the stream ended before the audio started.
    pub fn end_of_stream(&self) -> WavError {
        if self.offset == 0 {
            return WavError::Empty;
        }
        let at = self.offset;
        let inside = match self.state {
            State::Riff => "RIFF header".to_string(),
            State::ChunkHeader if self.buf.is_empty() => return WavError::NoData(at),
            State::ChunkHeader => "chunk header".to_string(),
            State::Fmt(_) => "fmt chunk".to_string(),
            State::Skip { id, .. } => format!("{} chunk", quoted(&id)),
            State::Done => "audio data".to_string(),
        };
        WavError::Truncated { at, inside }
    }

    fn on_field(&mut self, state: State, b: &[u8]) -> Result<Option<DataChunk>, WavError> {
        match state {
            State::Riff => {
                match &b[0..4] {
                    b"RIFF" => {}
                    b"RF64" => {
                        return Err(WavError::UnsupportedContainer("RF64 (64-bit WAV)".into()));
                    }
                    b"RIFX" => {
                        return Err(WavError::UnsupportedContainer(
                            "RIFX (big-endian WAV)".into(),
                        ));
                    }
                    other => return Err(WavError::NotRiff(quoted(other))),
                }
                if &b[8..12] != b"WAVE" {
                    return Err(WavError::NotWave(quoted(&b[8..12])));
                }
                self.state = State::ChunkHeader;
                Ok(None)
            }
            State::ChunkHeader => {
                let id: [u8; 4] = b[0..4].try_into().expect("4 bytes");
                let size = u32_at(b, 4);
                match &id {
                    b"fmt " => {
                        if !(16..=MAX_FMT_LEN).contains(&size) {
                            return Err(WavError::BadFmt(format!(
                                "size {size} (expected 16 to {MAX_FMT_LEN})"
                            )));
                        }
                        self.state = State::Fmt(size);
                        Ok(None)
                    }
                    b"data" => {
                        let format = self
                            .format
                            .ok_or(WavError::DataBeforeFmt(self.offset - 8))?;
                        let available = self.object_len.saturating_sub(self.offset);
                        let len = match size {
                            0 | u32::MAX => available,
                            d => u64::from(d).min(available),
                        };
                        Ok(Some(DataChunk {
                            format,
                            offset: self.offset,
                            declared_len: size,
                            len,
                        }))
                    }
                    _ => {
                        self.state = State::Skip {
                            id,
                            remaining: u64::from(size) + u64::from(size & 1),
                        };
                        Ok(None)
                    }
                }
            }
            State::Fmt(size) => {
                self.format = Some(parse_fmt(&b[..size as usize])?);
                self.state = State::ChunkHeader;
                Ok(None)
            }
            State::Skip { .. } | State::Done => unreachable!(),
        }
    }
}

fn tag_name(tag: u16) -> String {
    let name = match tag {
        2 => "MS ADPCM",
        0x11 => "IMA ADPCM",
        0x31 => "GSM 6.10",
        0x50 => "MPEG",
        0x55 => "MP3",
        0x0161 => "WMA",
        0x2000 => "AC-3",
        _ => "",
    };
    if name.is_empty() {
        format!("format tag {tag:#06x}")
    } else {
        format!("{name} (format tag {tag:#06x})")
    }
}

/// Validates a `fmt ` chunk body: what is already G.711 is recognised before anything else.
fn parse_fmt(b: &[u8]) -> Result<Format, WavError> {
    let mut tag = u16_at(b, 0);
    let channels = u16_at(b, 2);
    let sample_rate = u32_at(b, 4);
    let block_align = u16_at(b, 12);
    let bits = u16_at(b, 14);
    if tag == 0xFFFE {
        if b.len() < 40 || u16_at(b, 16) < 22 {
            return Err(WavError::BadFmt(
                "WAVE_FORMAT_EXTENSIBLE without its 22-byte extension".into(),
            ));
        }
        if b[26..40] != GUID_TAIL {
            return Err(WavError::Unsupported(
                "WAVE_FORMAT_EXTENSIBLE with a non-standard sub-format GUID".into(),
            ));
        }
        tag = u16_at(b, 24);
    }
    let kind = match tag {
        1 => SampleKind::Pcm,
        3 => SampleKind::Float,
        6 => SampleKind::G711(Codec::Alaw),
        7 => SampleKind::G711(Codec::Mulaw),
        other => return Err(WavError::Unsupported(tag_name(other))),
    };
    let format = Format {
        kind,
        channels,
        sample_rate,
        bits,
        block_align,
    };
    if let SampleKind::G711(_) = kind {
        return Ok(format);
    }
    match (kind, bits) {
        (SampleKind::Pcm, 8 | 16 | 24 | 32) | (SampleKind::Float, 32) => {}
        (SampleKind::Float, b) => {
            return Err(WavError::Unsupported(format!("{b}-bit float samples")));
        }
        (_, b) => return Err(WavError::Unsupported(format!("{b}-bit PCM samples"))),
    }
    if channels == 0 {
        return Err(WavError::BadFmt("0 channels".into()));
    }
    if channels > 2 {
        return Err(WavError::Unsupported(format!(
            "{channels} channels (only mono and stereo are converted)"
        )));
    }
    if u32::from(block_align) != u32::from(channels) * u32::from(bits / 8) {
        return Err(WavError::BadFmt(format!(
            "block align {block_align} does not match {channels} channel(s) of {bits} bits"
        )));
    }
    if sample_rate == 0 {
        return Err(WavError::BadFmt("sample rate 0 Hz".into()));
    }
    Ok(format)
}

/// Total length of a G.711 WAV holding `frames` frames of `channels` channels, pad included.
pub fn g711_file_len(channels: u16, frames: u64) -> u64 {
    let data = frames * u64::from(channels);
    G711_HEADER_LEN + data + (data & 1)
}

/// Appends the 58-byte G.711 header (`audio.md` §3.2): the same bytes sox and `ffmpeg -fflags +bitexact` write.
pub fn write_g711_header(
    out: &mut Vec<u8>,
    codec: Codec,
    channels: u16,
    frames: u64,
) -> Result<(), WavError> {
    let data = frames * u64::from(channels);
    let riff = g711_file_len(channels, frames) - 8;
    let (Ok(riff), Ok(data32), Ok(frames32)) = (
        u32::try_from(riff),
        u32::try_from(data),
        u32::try_from(frames),
    ) else {
        return Err(WavError::TooLarge(riff + 8));
    };
    let rate: u32 = 8000;
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff.to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&18u32.to_le_bytes());
    out.extend_from_slice(&codec.format_tag().to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(channels)).to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes()); // block align: one byte per channel
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // cbSize
    out.extend_from_slice(b"fact");
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&frames32.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data32.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm_header(tag: u16, channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut h = Vec::new();
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&data_len.wrapping_add(36).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&tag.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        h.extend_from_slice(&align.to_le_bytes());
        h.extend_from_slice(&bits.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data_len.to_le_bytes());
        h
    }

    fn read_all(bytes: &[u8], piece: usize) -> Result<(usize, DataChunk), WavError> {
        let mut r = HeaderReader::new(bytes.len() as u64);
        let mut pos = 0;
        while pos < bytes.len() {
            let end = (pos + piece).min(bytes.len());
            let (used, data) = r.push(&bytes[pos..end])?;
            pos += used;
            if let Some(d) = data {
                return Ok((pos, d));
            }
        }
        Err(r.end_of_stream())
    }

    #[test]
    fn exact_58_byte_header_for_240000_samples() {
        // audio.md §3.2 example.
        let mut h = Vec::new();
        write_g711_header(&mut h, Codec::Alaw, 1, 240_000).unwrap();
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "52494646b2a9030057415645666d74201200000006000100401f0000401f0000010008000000\
             666163740400000080a903006461746180a90300"
        );
        assert_eq!(h.len() as u64, G711_HEADER_LEN);
    }

    #[test]
    fn odd_sample_count_counts_the_pad_byte_in_riff_size() {
        let mut h = Vec::new();
        write_g711_header(&mut h, Codec::Mulaw, 1, 3).unwrap();
        assert_eq!(u32_at(&h, 4), 54, "RIFF size 50 + 3 + pad");
        assert_eq!(u32_at(&h, 54), 3, "data size excludes the pad");
        assert_eq!(u16_at(&h, 20), 7);
        assert_eq!(g711_file_len(1, 3), 62);
        let mut e = Vec::new();
        write_g711_header(&mut e, Codec::Alaw, 1, 0).unwrap();
        assert_eq!(u32_at(&e, 4), 50);
    }

    #[test]
    fn stereo_header_has_two_byte_frames() {
        let mut h = Vec::new();
        write_g711_header(&mut h, Codec::Alaw, 2, 10).unwrap();
        assert_eq!(u16_at(&h, 22), 2);
        assert_eq!(u32_at(&h, 28), 16000);
        assert_eq!(u16_at(&h, 32), 2);
        assert_eq!(u32_at(&h, 46), 10, "fact counts frames");
        assert_eq!(u32_at(&h, 54), 20);
    }

    #[test]
    fn plain_header_in_one_byte_pieces() {
        let mut f = pcm_header(1, 2, 8000, 16, 8);
        f.extend_from_slice(&[0; 8]);
        let (pos, d) = read_all(&f, 1).unwrap();
        assert_eq!(pos, 44);
        assert_eq!(d.offset, 44);
        assert_eq!(d.len, 8);
        assert_eq!(d.frames(), 2);
        assert_eq!(d.format.describe(), "pcm_s16le 8000Hz 2ch");
    }

    #[test]
    fn odd_sized_unknown_chunk_is_skipped_with_its_pad_byte() {
        let base = pcm_header(1, 1, 8000, 16, 4);
        let mut f = base[..36].to_vec();
        f.extend_from_slice(b"LIST");
        f.extend_from_slice(&5u32.to_le_bytes());
        f.extend_from_slice(b"abcde\0"); // 5 bytes + pad
        f.extend_from_slice(&base[36..]);
        f.extend_from_slice(&[1, 0, 2, 0]);
        let (pos, d) = read_all(&f, 3).unwrap();
        assert_eq!(pos, 36 + 14 + 8);
        assert_eq!(d.frames(), 2);
    }

    #[test]
    fn streamed_and_oversized_sizes_mean_to_the_end() {
        for declared in [0u32, u32::MAX, 1_000_000] {
            let mut f = pcm_header(1, 2, 8000, 16, declared);
            f.extend_from_slice(&[0; 10]); // 2 frames + 2 bytes of a partial frame
            let (_, d) = read_all(&f, 7).unwrap();
            assert_eq!(d.len, 10, "declared {declared}");
            assert_eq!(d.frames(), 2);
            assert_eq!(d.partial_frame_bytes(), 2);
            let missing = if declared == 1_000_000 { 999_990 } else { 0 };
            assert_eq!(d.missing_bytes(), missing);
        }
    }

    #[test]
    fn extensible_pcm_is_accepted() {
        let mut f = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        f.extend_from_slice(&40u32.to_le_bytes());
        f.extend_from_slice(&0xFFFEu16.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&8000u32.to_le_bytes());
        f.extend_from_slice(&48000u32.to_le_bytes());
        f.extend_from_slice(&6u16.to_le_bytes());
        f.extend_from_slice(&24u16.to_le_bytes());
        f.extend_from_slice(&22u16.to_le_bytes());
        f.extend_from_slice(&24u16.to_le_bytes()); // valid bits
        f.extend_from_slice(&3u32.to_le_bytes()); // channel mask
        f.extend_from_slice(&1u16.to_le_bytes()); // PCM sub-format
        f.extend_from_slice(&GUID_TAIL);
        f.extend_from_slice(b"data");
        f.extend_from_slice(&6u32.to_le_bytes());
        f.extend_from_slice(&[0; 6]);
        let (_, d) = read_all(&f, 5).unwrap();
        assert_eq!(d.format.kind, SampleKind::Pcm);
        assert_eq!(d.format.bits, 24);
        assert_eq!(d.frames(), 1);
    }

    #[test]
    fn already_g711_is_recognised_whatever_its_rate() {
        let f = pcm_header(6, 1, 16000, 8, 0);
        let (_, d) = read_all(&f, 64).unwrap();
        assert_eq!(d.format.kind, SampleKind::G711(Codec::Alaw));
        let f = pcm_header(7, 1, 8000, 8, 0);
        let (_, d) = read_all(&f, 64).unwrap();
        assert_eq!(d.format.kind, SampleKind::G711(Codec::Mulaw));
    }

    #[test]
    fn bad_inputs_name_the_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "empty object"),
            (
                b"ID3\x03\0\0\0\0\0\0\0\0".to_vec(),
                "starts with bytes 49 44 33 03",
            ),
            (b"OggS\0\0\0\0\0\0\0\0".to_vec(), "starts with \"OggS\""),
            (b"RIFF\0\0\0\0AVI ".to_vec(), "form type is \"AVI \""),
            (b"RF64\0\0\0\0WAVE".to_vec(), "RF64"),
            (b"RIFF\0\0".to_vec(), "inside the RIFF header"),
            (
                pcm_header(1, 2, 8000, 16, 0)[..30].to_vec(),
                "inside the fmt chunk",
            ),
            (
                pcm_header(1, 2, 8000, 16, 0)[..40].to_vec(),
                "inside the chunk header",
            ),
            (pcm_header(2, 1, 8000, 4, 0), "MS ADPCM"),
            (pcm_header(0x55, 1, 8000, 0, 0), "MP3"),
            (pcm_header(1, 6, 8000, 16, 0), "6 channels"),
            (pcm_header(1, 1, 8000, 12, 0), "12-bit PCM"),
            (pcm_header(3, 1, 8000, 64, 0), "64-bit float"),
            (
                b"RIFF\0\0\0\0WAVEdata\0\0\0\0".to_vec(),
                "before any fmt chunk",
            ),
            (
                pcm_header(1, 1, 8000, 16, 0)[..36].to_vec(),
                "no data chunk",
            ),
        ];
        for (bytes, expect) in cases {
            let err = read_all(&bytes, 4).unwrap_err().to_string();
            assert!(err.contains(expect), "{err:?} should contain {expect:?}");
        }
        // Any rate is read (FLAC and Opus keep or resample it, G.711 resamples it).
        let wide = read_all(&pcm_header(1, 2, 16000, 16, 0), 4).unwrap();
        assert_eq!(wide.1.format.sample_rate, 16000);
        assert!(read_all(&pcm_header(1, 2, 0, 16, 0), 4).is_err(), "0 Hz");
        let mut bad_align = pcm_header(1, 2, 8000, 16, 0);
        bad_align[32] = 3;
        let err = read_all(&bad_align, 64).unwrap_err().to_string();
        assert!(err.contains("block align 3"), "{err}");
    }

    #[test]
    fn unknown_chunk_cut_off_is_reported_by_name() {
        let mut f = pcm_header(1, 1, 8000, 16, 0)[..36].to_vec();
        f.extend_from_slice(b"junk");
        f.extend_from_slice(&100u32.to_le_bytes());
        f.extend_from_slice(&[0; 10]);
        let err = read_all(&f, 8).unwrap_err().to_string();
        assert!(err.contains("inside the \"junk\" chunk"), "{err}");
    }
}
