//! The spooled conversions: a WAV fed in pieces of any size, its header read, its audio reduced
//! to 16-bit PCM (downmixed as asked), resampled when the output needs another rate, and encoded
//! into a seekable sink: FLAC (any rate kept), Opus in Ogg (the next rate libopus codes at), or
//! G.711 WAV from a rate other than 8 kHz. The Lambda spools into a temporary file ([`Spool`])
//! and sends it with one PUT; `transcode` writes a file; `verify` encodes the original again.
//! Memory stays one block whatever the recording's length.
//!
//! (8 kHz to G.711 does not come here: its output length is known from the header, so it
//! streams straight into the PUT, see [`crate::transcode`].)

use std::io::{Seek, SeekFrom, Write};

use crate::flac::{FlacError, FlacWriter};
use crate::g711::Codec;
use crate::opus::{OggOpusWriter, OpusError};
use crate::resample::{ResampleError, Resampler};
use crate::transcode::{Downmix, PcmFrames, TranscodeError};
use crate::wav::{self, DataChunk, Format, HeaderReader, SampleKind};

/// Opus bit rate per channel unless set: where two-talker 8 kHz speech measured clear in both
/// channels (BENCHMARKS.md).
pub const DEFAULT_OPUS_BITRATE: u32 = 16_000;

/// An output that goes through a spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spooled {
    /// Lossless FLAC at the input's rate.
    Flac,
    /// Opus in Ogg at `bitrate` bits per second per channel.
    Opus {
        /// Per channel.
        bitrate: u32,
    },
    /// G.711 WAV, resampled to 8 kHz.
    G711(Codec),
}

impl Spooled {
    /// The codec's name in reports and metadata.
    pub fn name(self) -> &'static str {
        match self {
            Spooled::Flac => "flac",
            Spooled::Opus { .. } => "opus",
            Spooled::G711(c) => c.name(),
        }
    }

    /// The rate a `rate` Hz input is written at.
    pub fn output_rate(self, rate: u32) -> u32 {
        match self {
            Spooled::Flac => rate,
            Spooled::Opus { .. } => crate::opus::coded_rate(rate),
            Spooled::G711(_) => 8000,
        }
    }

    /// MIME type of the written object.
    pub fn content_type(self) -> &'static str {
        match self {
            Spooled::Flac => "audio/flac",
            Spooled::Opus { .. } => "audio/ogg",
            Spooled::G711(_) => "audio/wav",
        }
    }
}

/// Why the output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The sink refused a write.
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
    /// The FLAC encoder failed.
    #[error(transparent)]
    Flac(#[from] FlacError),
    /// The Opus encoder or Ogg writer failed.
    #[error(transparent)]
    Opus(#[from] OpusError),
    /// The resampler refused.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// The G.711 header cannot hold this length.
    #[error(transparent)]
    Wav(#[from] wav::WavError),
}

/// Why a WAV could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Not a WAV we read, already G.711, or cut short.
    #[error(transparent)]
    Transcode(#[from] TranscodeError),
    /// The encoder, the resampler or the output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The input's format.
    pub input: Format,
    /// The input's data chunk (partial frame, missing bytes).
    pub data: DataChunk,
    /// Input frames converted.
    pub frames: u64,
    /// Channels written.
    pub channels: u16,
    /// Rate written.
    pub rate: u32,
    /// Bytes written.
    pub len: u64,
}

impl Encoded {
    /// The recording's duration.
    pub fn seconds(&self) -> f64 {
        self.frames as f64 / f64::from(self.input.sample_rate.max(1))
    }
}

/// A G.711 WAV written to a seekable sink: the header with the length left at zero, the codes,
/// then the header again with the length.
struct G711Writer<W: Write + Seek> {
    out: W,
    codec: Codec,
    channels: u16,
    samples: u64,
    codes: Vec<u8>,
}

impl<W: Write + Seek> G711Writer<W> {
    fn new(mut out: W, codec: Codec, channels: u16) -> Result<Self, OutputError> {
        let mut header = Vec::with_capacity(wav::G711_HEADER_LEN as usize);
        wav::write_g711_header(&mut header, codec, channels, 0)?;
        out.write_all(&header)?;
        Ok(G711Writer {
            out,
            codec,
            channels,
            samples: 0,
            codes: Vec::with_capacity(1 << 14),
        })
    }

    fn push(&mut self, pcm: &[i16]) -> Result<(), OutputError> {
        self.codes.clear();
        self.codes.extend(pcm.iter().map(|&s| self.codec.encode(s)));
        self.out.write_all(&self.codes)?;
        self.samples += pcm.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> Result<(W, u64), OutputError> {
        if !self.samples.is_multiple_of(2) {
            self.out.write_all(&[0])?; // RIFF pad byte after an odd-sized data chunk
        }
        let frames = self.samples / u64::from(self.channels.max(1));
        let mut header = Vec::with_capacity(wav::G711_HEADER_LEN as usize);
        wav::write_g711_header(&mut header, self.codec, self.channels, frames)?;
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok((self.out, wav::g711_file_len(self.channels, frames)))
    }
}

enum Writer<W: Write + Seek> {
    Flac(Box<FlacWriter<W>>),
    Opus(Box<OggOpusWriter<W>>),
    G711(G711Writer<W>),
}

/// The encoder behind an optional resampler.
struct Sink<W: Write + Seek> {
    resampler: Option<Resampler>,
    writer: Writer<W>,
    resampled: Vec<i16>,
}

impl<W: Write + Seek> Sink<W> {
    fn new(out: W, kind: Spooled, format: &Format, channels: u16) -> Result<Self, OutputError> {
        let rate = format.sample_rate;
        let to = kind.output_rate(rate);
        let resampler = if to == rate {
            None
        } else {
            Some(Resampler::new(rate, to, channels)?)
        };
        let writer = match kind {
            Spooled::Flac => Writer::Flac(Box::new(FlacWriter::new(out, to, channels)?)),
            Spooled::Opus { bitrate } => Writer::Opus(Box::new(OggOpusWriter::new(
                out,
                to,
                channels,
                bitrate * u32::from(channels),
                rate,
            )?)),
            Spooled::G711(codec) => Writer::G711(G711Writer::new(out, codec, channels)?),
        };
        Ok(Sink {
            resampler,
            writer,
            resampled: Vec::new(),
        })
    }

    fn write(&mut self, pcm: &[i16]) -> Result<(), OutputError> {
        match &mut self.writer {
            Writer::Flac(w) => w.push(pcm)?,
            Writer::Opus(w) => w.push(pcm)?,
            Writer::G711(w) => w.push(pcm)?,
        }
        Ok(())
    }

    fn push(&mut self, pcm: &[i16]) -> Result<(), OutputError> {
        let Some(r) = &mut self.resampler else {
            return self.write(pcm);
        };
        let mut out = std::mem::take(&mut self.resampled);
        out.clear();
        r.push(pcm, &mut out)?;
        let done = self.write(&out);
        self.resampled = out;
        done
    }

    fn finish(mut self) -> Result<(W, u64), OutputError> {
        if let Some(r) = &mut self.resampler {
            let mut out = std::mem::take(&mut self.resampled);
            out.clear();
            r.finish(&mut out)?;
            self.write(&out)?;
        }
        Ok(match self.writer {
            Writer::Flac(w) => w.finish()?,
            Writer::Opus(w) => w.finish()?,
            Writer::G711(w) => w.finish()?,
        })
    }
}

/// A WAV, fed in pieces of any size, converted as it comes. The one converter of the Lambda's
/// spooled path (pieces of the GET body), `transcode` (pieces of a file) and `verify` (pieces
/// of the original again).
pub struct WavToSpool<W: Write + Seek> {
    size: u64,
    downmix: Downmix,
    kind: Spooled,
    state: State<W>,
}

enum State<W: Write + Seek> {
    Header(HeaderReader, W),
    Audio {
        data: DataChunk,
        frames: PcmFrames,
        sink: Box<Sink<W>>,
        pcm: Vec<i16>,
    },
    Failed,
}

impl<W: Write + Seek> WavToSpool<W> {
    /// For a WAV object of `size` bytes, into `out`.
    pub fn new(size: u64, out: W, downmix: Downmix, kind: Spooled) -> Self {
        WavToSpool {
            size,
            downmix,
            kind,
            state: State::Header(HeaderReader::new(size), out),
        }
    }

    /// The data chunk, once the header has been read.
    pub fn data(&self) -> Option<&DataChunk> {
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
        if let State::Header(header, _) = &mut self.state {
            let (used, found) = header.push(piece).map_err(TranscodeError::Wav)?;
            let Some(data) = found else {
                return Ok(());
            };
            piece = &piece[used..];
            let State::Header(_, out) = std::mem::replace(&mut self.state, State::Failed) else {
                unreachable!("matched above")
            };
            if let SampleKind::G711(codec) = data.format.kind {
                return Err(TranscodeError::AlreadyEncoded {
                    codec,
                    format: data.format.describe(),
                }
                .into());
            }
            let channels = crate::transcode::output_channels(&data.format, self.downmix);
            self.state = State::Audio {
                frames: PcmFrames::new(&data, self.downmix),
                sink: Box::new(Sink::new(out, self.kind, &data.format, channels)?),
                data,
                pcm: Vec::with_capacity(1 << 13),
            };
        }
        if let State::Audio {
            frames, sink, pcm, ..
        } = &mut self.state
        {
            frames.feed(piece, pcm);
            let done = sink.push(pcm);
            pcm.clear();
            done?;
        }
        Ok(())
    }

    /// After the last piece: the output completed; what was written, and the sink.
    pub fn finish(self) -> Result<(Encoded, W), EncodeError> {
        match self.state {
            State::Header(header, _) => Err(TranscodeError::Wav(header.end_of_stream()).into()),
            State::Failed => Err(OutputError::Io(std::io::Error::other(format!(
                "a failed conversion of a {}-byte object was finished",
                self.size
            )))
            .into()),
            State::Audio {
                data, frames, sink, ..
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
                let (out, len) = sink.finish()?;
                Ok((
                    Encoded {
                        input: data.format,
                        data,
                        frames: data.frames(),
                        channels,
                        rate: self.kind.output_rate(data.format.sample_rate),
                        len,
                    },
                    out,
                ))
            }
        }
    }
}

/// A WAV of `size` bytes read from `input`, converted into `out` (`transcode`, `verify`).
pub fn encode_wav<R: std::io::Read, W: Write + Seek>(
    mut input: R,
    size: u64,
    out: W,
    downmix: Downmix,
    kind: Spooled,
) -> Result<(Encoded, W), EncodeError> {
    let mut conv = WavToSpool::new(size, out, downmix, kind);
    let mut buf = vec![0u8; 1 << 20];
    while !conv.complete() {
        let n = input.read(&mut buf).map_err(OutputError::Io)?;
        if n == 0 {
            break;
        }
        conv.feed(&buf[..n])?;
    }
    conv.finish()
}

/// A file in the temporary folder for a spooled output (FLAC and G.711 rewrite their header
/// at the end; none has a length known before the end, which a PUT needs), removed when
/// dropped: a failed conversion leaves nothing behind.
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
        let path = std::env::temp_dir().join(format!("{who}-spool-{}-{n}", std::process::id()));
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decode::pcm16_wav as wav;

    fn run(input: &[u8], downmix: Downmix, kind: Spooled) -> (Encoded, Vec<u8>) {
        let (e, out) = encode_wav(
            input,
            input.len() as u64,
            std::io::Cursor::new(Vec::new()),
            downmix,
            kind,
        )
        .unwrap();
        (e, out.into_inner())
    }

    #[test]
    fn g711_from_16_khz_is_resampled_to_8_khz_with_a_true_header() {
        let samples: Vec<i16> = (0..2 * 16001)
            .map(|i| (((i / 2) as f64 * 0.2).sin() * 9000.0) as i16)
            .collect();
        let input = wav(2, 16000, &samples);
        let (e, out) = run(&input, Downmix::Stereo, Spooled::G711(Codec::Alaw));
        assert_eq!((e.rate, e.channels, e.frames), (8000, 2, 16001));
        assert_eq!(e.len, out.len() as u64);
        let mut header = wav::HeaderReader::new(out.len() as u64);
        let (_, data) = header.push(&out).unwrap();
        let data = data.unwrap();
        assert_eq!(data.format.sample_rate, 8000);
        assert_eq!(data.frames(), 8001, "ceil(16001 / 2)");
        assert_eq!(out.len() as u64, wav::g711_file_len(2, 8001));
    }

    #[test]
    fn an_odd_rate_is_refused_by_name_and_nothing_is_claimed() {
        let input = wav(1, 12345, &[0; 100]);
        let e = encode_wav(
            &input[..],
            input.len() as u64,
            std::io::Cursor::new(Vec::new()),
            Downmix::Average,
            Spooled::G711(Codec::Alaw),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("12345 Hz"), "{e}");
    }

    #[test]
    fn opus_keeps_a_rate_it_codes_and_resamples_one_it_does_not() {
        let samples: Vec<i16> = (0..44100)
            .map(|i| ((i % 200) * 100 - 10000) as i16)
            .collect();
        for (rate, coded) in [(16000, 16000), (44100, 48000), (11025, 12000)] {
            let input = wav(1, rate, &samples);
            let (e, out) = run(&input, Downmix::Average, Spooled::Opus { bitrate: 16000 });
            assert_eq!(e.rate, coded);
            let mut n = 0;
            let info = crate::opus::decode(std::io::Cursor::new(&out), |p| {
                n += p.len();
                Ok(())
            })
            .unwrap();
            assert_eq!(info.input_rate, rate);
            let want = Resampler::output_frames(rate, coded, 44100);
            let got = info.frames * u64::from(coded) / u64::from(info.rate);
            assert_eq!(got, want, "{rate} Hz");
            assert_eq!(n as u64, info.frames);
        }
    }
}
