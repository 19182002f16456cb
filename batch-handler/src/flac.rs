//! FLAC output, lossless, frame by frame, into a seekable sink: the header first with what is
//! not known yet left blank, each 4096-frame block encoded as it fills (so memory stays one block
//! whatever the recording's length), then the header written again with the total, the frame
//! sizes and the MD5 of the audio, as `flac -t` checks it.
//!
//! The encoder is `flacenc` (pure Rust; its output decodes bit-exactly with the reference
//! `flac` tool, which the tests run). Its whole-stream API keeps every frame in memory, so this
//! drives its per-frame API instead.

use std::io::{Seek, SeekFrom, Write};

use flacenc::bitsink::ByteSink;
use flacenc::component::{BitRepr, Stream, StreamInfo};
use flacenc::error::Verify;
use flacenc::source::{Context, Fill, FrameBuf};

/// Frames per FLAC block (the reference encoder's default at `-5`).
pub const BLOCK: usize = 4096;
/// The four bytes every FLAC stream starts with.
pub const MAGIC: &[u8; 4] = b"fLaC";

/// What can go wrong writing FLAC.
#[derive(Debug, thiserror::Error)]
pub enum FlacError {
    /// The sink refused a write.
    #[error("writing the FLAC output: {0}")]
    Io(#[from] std::io::Error),
    /// The encoder refused its input or settings.
    #[error("FLAC encoder: {0}")]
    Encoder(String),
}

fn enc<E: std::fmt::Debug>(e: E) -> FlacError {
    FlacError::Encoder(format!("{e:?}"))
}

/// A streaming FLAC writer of 16-bit samples.
pub struct FlacWriter<W: Write + Seek> {
    out: W,
    config: flacenc::error::Verified<flacenc::config::Encoder>,
    info: StreamInfo,
    channels: usize,
    pending: Vec<i32>,
    fb: (FrameBuf, Context),
    frame_sizes: (usize, usize),
    written: u64,
    sink: ByteSink,
}

impl<W: Write + Seek> std::fmt::Debug for FlacWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlacWriter")
            .field("channels", &self.channels)
            .field("written", &self.written)
            .finish()
    }
}

impl<W: Write + Seek> FlacWriter<W> {
    /// Starts a stream of `channels` 16-bit channels at `sample_rate`; writes its header.
    pub fn new(mut out: W, sample_rate: u32, channels: u16) -> Result<Self, FlacError> {
        let channels = usize::from(channels);
        let info = StreamInfo::new(sample_rate as usize, channels, 16).map_err(enc)?;
        let config = flacenc::config::Encoder::default()
            .into_verified()
            .map_err(|(_, e)| enc(e))?;
        let header = header_bytes(&info)?;
        out.write_all(&header)?;
        Ok(FlacWriter {
            out,
            config,
            info,
            channels,
            pending: Vec::with_capacity(BLOCK * channels),
            fb: (
                FrameBuf::with_size(channels, BLOCK).map_err(enc)?,
                Context::new(16, channels),
            ),
            frame_sizes: (usize::MAX, 0),
            written: header.len() as u64,
            sink: ByteSink::new(),
        })
    }

    /// Adds interleaved samples (any count of whole frames, across calls).
    pub fn push(&mut self, interleaved: &[i16]) -> Result<(), FlacError> {
        let block = BLOCK * self.channels;
        for s in interleaved {
            self.pending.push(i32::from(*s));
            if self.pending.len() == block {
                self.encode_pending()?;
            }
        }
        Ok(())
    }

    fn encode_pending(&mut self) -> Result<(), FlacError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.fb.fill_interleaved(&self.pending).map_err(enc)?;
        self.pending.clear();
        let number = self.fb.1.current_frame_number().unwrap_or(0);
        let frame = flacenc::encode_fixed_size_frame(&self.config, &self.fb.0, number, &self.info)
            .map_err(enc)?;
        self.sink.clear();
        frame.write(&mut self.sink).map_err(enc)?;
        let bytes = self.sink.as_slice();
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        self.frame_sizes = (
            self.frame_sizes.0.min(bytes.len()),
            self.frame_sizes.1.max(bytes.len()),
        );
        Ok(())
    }

    /// Encodes the last block, writes the final header; returns the sink and the bytes written.
    pub fn finish(mut self) -> Result<(W, u64), FlacError> {
        let last = self.pending.len() / self.channels.max(1);
        self.encode_pending()?;
        let total = self.fb.1.total_samples();
        let block_min = if total <= BLOCK { last.max(16) } else { BLOCK };
        self.info
            .set_block_sizes(block_min.min(BLOCK), BLOCK)
            .map_err(enc)?;
        if self.frame_sizes.1 > 0 {
            self.info
                .set_frame_sizes(self.frame_sizes.0, self.frame_sizes.1)
                .map_err(enc)?;
        }
        self.info.set_total_samples(total);
        self.info.set_md5_digest(&self.fb.1.md5_digest());
        let header = header_bytes(&self.info)?;
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

/// `fLaC` and the STREAMINFO block (the only metadata block): 42 bytes, the same length
/// whatever the values, so the final header overwrites the first in place.
fn header_bytes(info: &StreamInfo) -> Result<Vec<u8>, FlacError> {
    let stream = Stream::with_stream_info(info.clone());
    let mut sink = ByteSink::new();
    stream.write(&mut sink).map_err(enc)?;
    Ok(sink.as_slice().to_vec())
}

/// What [`encode_wav`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The input's format.
    pub input: crate::wav::Format,
    /// The input's data chunk (partial frame, missing bytes).
    pub data: crate::wav::DataChunk,
    /// Frames encoded.
    pub frames: u64,
    /// Channels written.
    pub channels: u16,
    /// Bytes written.
    pub len: u64,
}

/// Why a WAV could not be written as FLAC.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Not a WAV we read, or cut short.
    #[error(transparent)]
    Transcode(#[from] crate::transcode::TranscodeError),
    /// The encoder or the output failed.
    #[error(transparent)]
    Flac(#[from] FlacError),
}

/// A WAV, fed in pieces of any size, written as FLAC: the header read, then the audio encoded
/// as it comes. The one converter of the Lambda (pieces of the GET body), `transcode --codec
/// flac` (pieces of a file) and `verify` (pieces of the original again).
pub struct WavToFlac<W: Write + Seek> {
    size: u64,
    downmix: crate::transcode::Downmix,
    state: State<W>,
}

enum State<W: Write + Seek> {
    Header(crate::wav::HeaderReader, W),
    Audio {
        data: crate::wav::DataChunk,
        frames: crate::transcode::PcmFrames,
        writer: Box<FlacWriter<W>>,
        pcm: Vec<i16>,
    },
    Failed,
}

impl<W: Write + Seek> WavToFlac<W> {
    /// For a WAV object of `size` bytes, into `out`.
    pub fn new(size: u64, out: W, downmix: crate::transcode::Downmix) -> Self {
        WavToFlac {
            size,
            downmix,
            state: State::Header(crate::wav::HeaderReader::new(size), out),
        }
    }

    /// The data chunk, once the header has been read.
    pub fn data(&self) -> Option<&crate::wav::DataChunk> {
        match &self.state {
            State::Audio { data, .. } => Some(data),
            _ => None,
        }
    }

    /// Whether every audio byte has arrived (the rest of the object is not audio).
    pub fn complete(&self) -> bool {
        matches!(&self.state, State::Audio { frames, .. } if frames.left() == 0)
    }

    /// Takes the next piece of the object.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), EncodeError> {
        use crate::transcode::TranscodeError;
        if let State::Header(header, _) = &mut self.state {
            let (used, found) = header.push(piece).map_err(TranscodeError::Wav)?;
            let Some(data) = found else {
                return Ok(());
            };
            piece = &piece[used..];
            let State::Header(_, out) = std::mem::replace(&mut self.state, State::Failed) else {
                unreachable!("matched above")
            };
            if let crate::wav::SampleKind::G711(codec) = data.format.kind {
                return Err(TranscodeError::AlreadyEncoded {
                    codec,
                    format: data.format.describe(),
                }
                .into());
            }
            let channels = crate::transcode::output_channels(&data.format, self.downmix);
            self.state = State::Audio {
                frames: crate::transcode::PcmFrames::new(&data, self.downmix),
                writer: Box::new(FlacWriter::new(out, data.format.sample_rate, channels)?),
                data,
                pcm: Vec::with_capacity(BLOCK * 2),
            };
        }
        if let State::Audio {
            frames,
            writer,
            pcm,
            ..
        } = &mut self.state
        {
            frames.feed(piece, pcm);
            writer.push(pcm)?;
            pcm.clear();
        }
        Ok(())
    }

    /// After the last piece: the final header written; what was written, and the sink.
    pub fn finish(self) -> Result<(Encoded, W), EncodeError> {
        use crate::transcode::TranscodeError;
        match self.state {
            State::Header(header, _) => Err(TranscodeError::Wav(header.end_of_stream()).into()),
            State::Failed => Err(FlacError::Encoder(format!(
                "a failed conversion of a {}-byte object was finished",
                self.size
            ))
            .into()),
            State::Audio {
                data,
                frames,
                writer,
                ..
            } => {
                if frames.left() > 0 {
                    let expected = data.frames() * u64::from(data.format.block_align);
                    return Err(TranscodeError::StreamEnded {
                        expected,
                        got: expected - frames.left(),
                    }
                    .into());
                }
                let channels = crate::transcode::output_channels(&data.format, self.downmix);
                let (out, len) = writer.finish()?;
                Ok((
                    Encoded {
                        input: data.format,
                        data,
                        frames: data.frames(),
                        channels,
                        len,
                    },
                    out,
                ))
            }
        }
    }
}

/// A WAV of `size` bytes read from `input`, written to `out` as FLAC (`transcode --codec flac`).
pub fn encode_wav<R: std::io::Read, W: Write + Seek>(
    mut input: R,
    size: u64,
    out: W,
    downmix: crate::transcode::Downmix,
) -> Result<(Encoded, W), EncodeError> {
    let mut conv = WavToFlac::new(size, out, downmix);
    let mut buf = vec![0u8; 1 << 20];
    while !conv.complete() {
        let n = input.read(&mut buf).map_err(FlacError::Io)?;
        if n == 0 {
            break;
        }
        conv.feed(&buf[..n])?;
    }
    conv.finish()
}

/// A file in the temporary folder for FLAC output (which rewrites its header at the end, so it
/// cannot go straight into a request body), removed when dropped: a failed conversion leaves
/// nothing behind. The Lambda spools its output here, `verify` its re-encoding.
#[derive(Debug)]
pub struct Spool {
    /// Where it is.
    pub path: std::path::PathBuf,
}

impl Spool {
    /// A new empty file, named after `who`, this process and a counter; open for reading and
    /// writing.
    pub fn create(who: &str) -> std::io::Result<(Spool, std::fs::File)> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("{who}-spool-{}-{n}.flac", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((Spool { path }, file))
    }

    /// Hands every byte of the file, in order, to `take` (to hash what will be sent).
    pub fn read_through(&self, mut take: impl FnMut(&[u8])) -> std::io::Result<()> {
        use std::io::Read;
        let mut file = std::fs::File::open(&self.path)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match file.read(&mut buf)? {
                0 => return Ok(()),
                n => take(&buf[..n]),
            }
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether `bytes` start a FLAC stream (an object already converted to FLAC).
pub fn is_flac(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(channels: u16, samples: &[i16], pieces: usize) -> Vec<u8> {
        let mut w = FlacWriter::new(std::io::Cursor::new(Vec::new()), 8000, channels).unwrap();
        let per = (samples.len() / pieces.max(1)).max(1);
        for chunk in samples.chunks(per - per % usize::from(channels)) {
            w.push(chunk).unwrap();
        }
        let (out, n) = w.finish().unwrap();
        let bytes = out.into_inner();
        assert_eq!(bytes.len() as u64, n);
        bytes
    }

    #[test]
    fn the_header_is_written_twice_in_place_and_counts_every_frame() {
        let samples: Vec<i16> = (0..2 * 10_000)
            .map(|i| ((i * 37) % 2000 - 1000) as i16)
            .collect();
        let one = encode(2, &samples, 1);
        let many = encode(2, &samples, 7);
        assert_eq!(one, many, "how the input is cut does not change the output");
        assert!(is_flac(&one));
        // STREAMINFO: total samples (36 bits) at byte 21..26 of the stream.
        let b = &one[8..42];
        let total = (u64::from(b[13] & 0x0F) << 32)
            | (u64::from(b[14]) << 24)
            | (u64::from(b[15]) << 16)
            | (u64::from(b[16]) << 8)
            | u64::from(b[17]);
        assert_eq!(total, 10_000);
        assert_ne!(&b[18..34], &[0u8; 16], "MD5 of the audio is set");
    }

    #[test]
    fn empty_and_tiny_inputs_still_make_a_stream() {
        let empty = encode(1, &[], 1);
        assert_eq!(empty.len(), 42);
        let one = encode(1, &[123], 1);
        assert!(one.len() > 42);
    }
}
