//! Downmix and G.711-encode a WAV byte stream in pieces, in constant memory.
//!
//! The output header goes out before any audio: the output sample count equals the input frame
//! count, which the input header and the object length fix in advance. So a caller can start an
//! upload of a known length as soon as [`Transcoder::feed`] returns a [`Plan`], and stream the
//! rest. Each piece is converted by a vectorised loop (about 9 GB/s of input per core here), so the
//! work stays on the calling task: a 256 KiB piece takes tens of microseconds.

// The one place this module needs `unsafe`: the AVX2 build of the kernel, chosen at run time (each use has its SAFETY note).
#![allow(unsafe_code)]

use crate::g711::{self, Codec};
use crate::wav::{self, DataChunk, Format, HeaderReader, SampleKind, WavError};

/// How two channels become the output; Connect records the customer left and the agent right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Downmix {
    /// `(L + R + 1) >> 1`: what ffmpeg `-ac 1` and sox `-c 1` do; never clips, each talker -6 dB.
    Average,
    /// Saturating `L + R`: each talker keeps its level; can clip on double-talk.
    Sum,
    /// Left channel only (Connect: customer and conference parties).
    Left,
    /// Right channel only (Connect: agent).
    Right,
    /// Both channels encoded: half the size instead of a quarter, speaker separation kept.
    Stereo,
}

impl Downmix {
    /// The name used in settings, job arguments and result strings.
    pub fn name(self) -> &'static str {
        match self {
            Downmix::Average => "average",
            Downmix::Sum => "sum",
            Downmix::Left => "left",
            Downmix::Right => "right",
            Downmix::Stereo => "stereo",
        }
    }
}

impl std::str::FromStr for Downmix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "average" | "avg" | "mean" => Ok(Downmix::Average),
            "sum" => Ok(Downmix::Sum),
            "left" => Ok(Downmix::Left),
            "right" => Ok(Downmix::Right),
            "stereo" | "none" => Ok(Downmix::Stereo),
            other => Err(format!(
                "unknown downmix '{other}' (expected average, sum, left, right or stereo)"
            )),
        }
    }
}

/// What to produce; the same value drives the CLI, the Lambda and the local engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Output law.
    pub codec: Codec,
    /// Channel handling.
    pub downmix: Downmix,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            codec: Codec::Alaw,
            downmix: Downmix::Average,
        }
    }
}

/// Everything known about the conversion once the input header has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The input's data chunk (format, offset, sizes).
    pub input: DataChunk,
    /// Output options in force.
    pub options: Options,
    /// 1, or 2 for [`Downmix::Stereo`] of a stereo input.
    pub output_channels: u16,
    /// Exact byte length of the output file, header and pad included.
    pub output_len: u64,
}

impl Plan {
    /// Frames converted (the output sample count per channel).
    pub fn frames(&self) -> u64 {
        self.input.frames()
    }

    /// Audio duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(self.input.format.sample_rate)
    }
}

/// Why a stream could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    /// The input is not a WAV we convert.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// The input is already G.711: nothing to do.
    #[error("already {} ({})", .codec.name(), .format)]
    AlreadyEncoded {
        /// Its law.
        codec: Codec,
        /// Its format, described.
        format: String,
    },
    /// 8 kHz is what G.711 is: another rate goes through the resampling (spooled) path.
    #[error(
        "sample rate {rate} Hz: G.711 is 8000 Hz, so this input is resampled (the spooled path)"
    )]
    NeedsResampling {
        /// The input's rate.
        rate: u32,
    },
    /// The stream stopped before the length it announced (a cut connection, a file being written).
    #[error("input ended after {got} of {expected} audio bytes")]
    StreamEnded {
        /// Audio bytes expected.
        expected: u64,
        /// Audio bytes received.
        got: u64,
    },
}

type SampleReader = fn(&[u8]) -> i16;

fn read_u8(b: &[u8]) -> i16 {
    (i16::from(b[0]) - 128) << 8
}
fn read_s16(b: &[u8]) -> i16 {
    i16::from_le_bytes([b[0], b[1]])
}
/// Wider samples are reduced to 16 bits to the nearest step (ties toward +∞), saturating at
/// the top: truncation would bias every sample down by half a step.
fn round_shift(v: i64, shift: u32) -> i16 {
    ((v + (1 << (shift - 1))) >> shift).clamp(-32768, 32767) as i16
}
fn read_s24(b: &[u8]) -> i16 {
    round_shift(i64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8), 8)
}
fn read_s32(b: &[u8]) -> i16 {
    round_shift(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])), 16)
}
fn read_f32(b: &[u8]) -> i16 {
    // Nearest step, ties toward +∞ as for integers; `as` saturates (±1.0 and beyond, ±inf)
    // and maps NaN to 0.
    (f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * 32768.0 + 0.5).floor() as i16
}

fn sample_reader(format: &Format) -> SampleReader {
    match (format.kind, format.bits) {
        (SampleKind::Float, _) => read_f32,
        (_, 8) => read_u8,
        (_, 24) => read_s24,
        (_, 32) => read_s32,
        _ => read_s16,
    }
}

#[inline(always)]
fn mix(downmix: Downmix, l: i32, r: i32) -> i16 {
    match downmix {
        Downmix::Average | Downmix::Stereo => ((l + r + 1) >> 1) as i16,
        Downmix::Sum => (l + r).clamp(-32768, 32767) as i16,
        Downmix::Left => l as i16,
        Downmix::Right => r as i16,
    }
}

/// Applies `code` to every `WIDTH`-byte group of `input` (a frame or a sample).
///
/// Fixed-size groups and no bounds checks inside: the compiler turns the loop into SIMD.
#[inline(always)]
fn groups<const WIDTH: usize>(out: &mut [u8], input: &[u8], code: impl Fn(&[u8; WIDTH]) -> u8) {
    let (groups, _) = input.as_chunks::<WIDTH>();
    for (c, g) in out.iter_mut().zip(groups) {
        *c = code(g);
    }
}

#[inline(always)]
fn s16<const N: usize>(b: &[u8; N], at: usize) -> i32 {
    i32::from(i16::from_le_bytes([b[at], b[at + 1]]))
}

#[inline(always)]
fn word(b: &[u8; 4]) -> i32 {
    i32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The 16-bit loops: stereo to one channel, or one code per sample (mono, stereo kept).
#[inline(always)]
fn pcm16(out: &mut [u8], input: &[u8], codec: Codec, downmix: Option<Downmix>) {
    // One monomorphised loop per codec and downmix so no branch is left inside.
    macro_rules! with_codec {
        ($enc:path) => {
            match downmix {
                None => groups::<2>(out, input, |s| $enc(s16(s, 0))),
                Some(Downmix::Average) | Some(Downmix::Stereo) => groups::<4>(out, input, |f| {
                    $enc(i32::from(mix(Downmix::Average, s16(f, 0), s16(f, 2))))
                }),
                Some(Downmix::Sum) => groups::<4>(out, input, |f| {
                    $enc(i32::from(mix(Downmix::Sum, s16(f, 0), s16(f, 2))))
                }),
                // A frame read as one 32-bit word: contiguous loads vectorise, strided ones do not.
                Some(Downmix::Left) => groups::<4>(out, input, |f| $enc((word(f) << 16) >> 16)),
                Some(Downmix::Right) => groups::<4>(out, input, |f| $enc(word(f) >> 16)),
            }
        };
    }
    match codec {
        Codec::Alaw => with_codec!(g711::alaw_arith),
        Codec::Mulaw => with_codec!(g711::mulaw_arith),
    }
}

/// [`pcm16`] compiled for AVX2: twice the lanes of the SSE2 baseline every x86_64 has.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pcm16_avx2(out: &mut [u8], input: &[u8], codec: Codec, downmix: Option<Downmix>) {
    pcm16(out, input, codec, downmix)
}

/// Runs [`pcm16`] with the widest instructions this CPU has.
fn pcm16_dispatch(out: &mut [u8], input: &[u8], codec: Codec, downmix: Option<Downmix>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { pcm16_avx2(out, input, codec, downmix) };
    }
    pcm16(out, input, codec, downmix)
}

/// Converts whole frames of `format` from `input` and appends the codes to `out`.
pub fn convert_frames(input: &[u8], format: &Format, options: Options, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + codes_for(input.len(), format, options), 0);
    convert_frames_into(input, format, options, &mut out[start..]);
}

/// Output bytes for `input_len` bytes of `format`: one code per frame, two for stereo kept.
pub fn codes_for(input_len: usize, format: &Format, options: Options) -> usize {
    let frames = input_len / usize::from(format.block_align);
    if format.channels == 2 && options.downmix == Downmix::Stereo {
        frames * 2
    } else {
        frames
    }
}

/// Converts whole frames of `format` from `input` into the start of `out`; returns the codes written.
///
/// This is the kernel: pure, allocation-free, and benchmarked alone. `out` must hold
/// [`codes_for`] bytes.
pub fn convert_frames_into(
    input: &[u8],
    format: &Format,
    options: Options,
    out: &mut [u8],
) -> usize {
    let align = usize::from(format.block_align);
    let frames = input.len() / align;
    let input = &input[..frames * align];
    let stereo_in = format.channels == 2;
    let out_per_frame = codes_for(align, format, options);
    let written = frames * out_per_frame;
    let dst = &mut out[..written];
    let is_s16 = format.kind == SampleKind::Pcm && format.bits == 16;
    let table = options.codec.table();
    match (is_s16, stereo_in, out_per_frame) {
        (true, true, 1) => pcm16_dispatch(dst, input, options.codec, Some(options.downmix)),
        (true, _, _) => pcm16_dispatch(dst, input, options.codec, None),
        (false, _, _) => {
            let read = sample_reader(format);
            let width = usize::from(format.bits / 8);
            if !stereo_in || out_per_frame == 2 {
                // Every sample becomes one code (mono, or stereo kept as stereo).
                for (o, s) in dst.iter_mut().zip(input.chunks_exact(width)) {
                    *o = table[read(s) as u16 as usize];
                }
            } else {
                for (o, f) in dst.iter_mut().zip(input.chunks_exact(align)) {
                    let l = i32::from(read(&f[..width]));
                    let r = i32::from(read(&f[width..]));
                    *o = table[mix(options.downmix, l, r) as u16 as usize];
                }
            }
        }
    }
    written
}

/// Channels of the PCM output for `format` with `downmix`: two only when stereo is kept.
pub fn output_channels(format: &Format, downmix: Downmix) -> u16 {
    if format.channels == 2 && downmix == Downmix::Stereo {
        2
    } else {
        1
    }
}

/// Whole frames of `format` from `input` as 16-bit PCM (rounded, saturated), downmixed as
/// [`convert_frames_into`] does, appended to `out` interleaved: what the FLAC encoder takes.
pub fn pcm16_frames(input: &[u8], format: &Format, downmix: Downmix, out: &mut Vec<i16>) {
    let align = usize::from(format.block_align);
    let width = usize::from(format.bits / 8);
    let read = sample_reader(format);
    let keep = output_channels(format, downmix) == 2;
    for f in input.chunks_exact(align) {
        if format.channels == 1 {
            out.push(read(&f[..width]));
        } else if keep {
            out.push(read(&f[..width]));
            out.push(read(&f[width..2 * width]));
        } else {
            let (l, r) = (
                i32::from(read(&f[..width])),
                i32::from(read(&f[width..2 * width])),
            );
            out.push(mix(downmix, l, r));
        }
    }
}

/// The audio bytes of a data chunk, as they arrive in pieces of any size, turned into 16-bit
/// PCM frames ([`pcm16_frames`]); a frame split between pieces is carried over, bytes past the
/// chunk (trailing chunks) are ignored.
#[derive(Debug)]
pub struct PcmFrames {
    format: Format,
    downmix: Downmix,
    left: u64,
    carry: Vec<u8>,
}

impl PcmFrames {
    /// For the whole frames of `data`.
    pub fn new(data: &DataChunk, downmix: Downmix) -> Self {
        PcmFrames {
            format: data.format,
            downmix,
            left: data.frames() * u64::from(data.format.block_align),
            carry: Vec::with_capacity(usize::from(data.format.block_align)),
        }
    }

    /// Converts what of `piece` is audio, appending samples to `out`.
    pub fn feed(&mut self, piece: &[u8], out: &mut Vec<i16>) {
        let align = usize::from(self.format.block_align);
        let take = (piece.len() as u64).min(self.left) as usize;
        self.left -= take as u64;
        let mut piece = &piece[..take];
        if !self.carry.is_empty() {
            let need = (align - self.carry.len()).min(piece.len());
            self.carry.extend_from_slice(&piece[..need]);
            piece = &piece[need..];
            if self.carry.len() == align {
                pcm16_frames(&self.carry, &self.format, self.downmix, out);
                self.carry.clear();
            }
        }
        let whole = piece.len() / align * align;
        pcm16_frames(&piece[..whole], &self.format, self.downmix, out);
        self.carry.extend_from_slice(&piece[whole..]);
    }

    /// Audio bytes still expected.
    pub fn left(&self) -> u64 {
        self.left
    }
}

#[derive(Debug)]
struct Body {
    plan: Plan,
    frames_left: u64,
    carry: Vec<u8>,
    data_done: bool,
}

/// A WAV → G.711 WAV converter fed with pieces of the input, appending pieces of the output.
#[derive(Debug)]
pub struct Transcoder {
    options: Options,
    header: HeaderReader,
    body: Option<Body>,
    bytes_in: u64,
}

impl Transcoder {
    /// Starts a conversion of an input of `object_len` bytes.
    pub fn new(options: Options, object_len: u64) -> Self {
        Transcoder {
            options,
            header: HeaderReader::new(object_len),
            body: None,
            bytes_in: 0,
        }
    }

    /// The plan, once the header has been read.
    pub fn plan(&self) -> Option<&Plan> {
        self.body.as_ref().map(|b| &b.plan)
    }

    /// Bytes of input consumed so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Consumes `input` and appends output to `out`; returns the plan on the call that completes the header.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<Plan>, TranscodeError> {
        let mut rest = input;
        let mut started = None;
        if self.body.is_none() {
            let (used, plan) = self.feed_header(input, out)?;
            rest = &input[used..];
            if plan.is_none() {
                return Ok(None);
            }
            started = plan;
        }
        self.bytes_in += rest.len() as u64;
        let body = self.body.as_mut().expect("started");
        Self::convert(body, rest, out);
        Ok(started)
    }

    /// Consumes header bytes only; returns how many it used and, once complete, the plan (the
    /// output header is then in `out`).
    ///
    /// For a caller with random access to the input: it converts the audio itself, in pieces at
    /// known offsets, with [`convert_frames`] (see [`crate::file`]).
    pub fn feed_header(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, Option<Plan>), TranscodeError> {
        if self.body.is_some() {
            return Ok((0, None));
        }
        let (used, data) = self.header.push(input)?;
        self.bytes_in += used as u64;
        match data {
            Some(data) => Ok((used, Some(self.start(data, out)?))),
            None => Ok((used, None)),
        }
    }

    fn start(&mut self, data: DataChunk, out: &mut Vec<u8>) -> Result<Plan, TranscodeError> {
        if let SampleKind::G711(codec) = data.format.kind {
            return Err(TranscodeError::AlreadyEncoded {
                codec,
                format: data.format.describe(),
            });
        }
        if data.format.sample_rate != 8000 {
            return Err(TranscodeError::NeedsResampling {
                rate: data.format.sample_rate,
            });
        }
        let output_channels =
            if data.format.channels == 2 && self.options.downmix == Downmix::Stereo {
                2
            } else {
                1
            };
        let frames = data.frames();
        let plan = Plan {
            input: data,
            options: self.options,
            output_channels,
            output_len: wav::g711_file_len(output_channels, frames),
        };
        wav::write_g711_header(out, self.options.codec, output_channels, frames)?;
        let mut body = Body {
            plan,
            frames_left: frames,
            carry: Vec::with_capacity(usize::from(data.format.block_align)),
            data_done: false,
        };
        Self::finish_data_if_done(&mut body, out);
        self.body = Some(body);
        Ok(plan)
    }

    fn convert(body: &mut Body, mut rest: &[u8], out: &mut Vec<u8>) {
        let format = body.plan.input.format;
        let align = usize::from(format.block_align);
        if body.frames_left == 0 {
            return;
        }
        if !body.carry.is_empty() {
            let take = (align - body.carry.len()).min(rest.len());
            body.carry.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if body.carry.len() < align {
                return;
            }
            convert_frames(&body.carry, &format, body.plan.options, out);
            body.carry.clear();
            body.frames_left -= 1;
        }
        let whole = ((rest.len() / align) as u64).min(body.frames_left) as usize;
        convert_frames(&rest[..whole * align], &format, body.plan.options, out);
        body.frames_left -= whole as u64;
        rest = &rest[whole * align..];
        if body.frames_left > 0 {
            body.carry.extend_from_slice(rest);
        }
        Self::finish_data_if_done(body, out);
    }

    fn finish_data_if_done(body: &mut Body, out: &mut Vec<u8>) {
        if body.frames_left > 0 || body.data_done {
            return;
        }
        let data_len = body.plan.frames() * u64::from(body.plan.output_channels);
        if data_len % 2 == 1 {
            out.push(0); // RIFF pad byte after an odd-sized data chunk
        }
        body.data_done = true;
    }

    /// Ends the input; fails if the audio promised by the header and object length did not all arrive.
    pub fn finish(self) -> Result<Plan, TranscodeError> {
        let Some(body) = self.body else {
            return Err(self.header.end_of_stream().into());
        };
        if body.frames_left > 0 {
            let align = u64::from(body.plan.input.format.block_align);
            let expected = body.plan.frames() * align;
            let got = expected - body.frames_left * align + body.carry.len() as u64;
            return Err(TranscodeError::StreamEnded { expected, got });
        }
        Ok(body.plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wider_samples_round_to_the_nearest_step_and_saturate() {
        let s24 = |v: i32| read_s24(&v.to_le_bytes()[..3]);
        assert_eq!(s24(0x000080), 1, "half a step rounds up");
        assert_eq!(s24(0x00007F), 0);
        assert_eq!(s24(-0x81), -1);
        assert_eq!(s24(-0x80), 0, "ties toward +inf");
        assert_eq!(s24(0x7FFFFF), 32767, "saturates instead of wrapping");
        assert_eq!(s24(-0x800000), -32768);
        let s32 = |v: i32| read_s32(&v.to_le_bytes());
        assert_eq!(s32(0x8000), 1);
        assert_eq!(s32(0x7FFF), 0);
        assert_eq!(s32(i32::MAX), 32767);
        assert_eq!(s32(i32::MIN), -32768);
        let f = |v: f32| read_f32(&v.to_le_bytes());
        assert_eq!(f(0.5 / 32768.0), 1);
        assert_eq!(f(0.49 / 32768.0), 0);
        assert_eq!(f(-0.51 / 32768.0), -1);
        assert_eq!(f(1.0), 32767);
        assert_eq!(f(-1.0), -32768);
        assert_eq!(f(f32::INFINITY), 32767);
        assert_eq!(f(f32::NAN), 0);
        for v in (-0x800000..0x800000).step_by(997) {
            let want = ((f64::from(v) / 256.0) + 0.5)
                .floor()
                .clamp(-32768.0, 32767.0) as i16;
            assert_eq!(s24(v), want, "{v}");
        }
    }

    fn wav(channels: u16, bits: u16, tag: u16, data: &[u8]) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut h = b"RIFF".to_vec();
        h.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&tag.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&8000u32.to_le_bytes());
        h.extend_from_slice(&(8000 * u32::from(align)).to_le_bytes());
        h.extend_from_slice(&align.to_le_bytes());
        h.extend_from_slice(&bits.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(data);
        h
    }

    fn stereo16(frames: &[(i16, i16)]) -> Vec<u8> {
        let data: Vec<u8> = frames
            .iter()
            .flat_map(|(l, r)| [l.to_le_bytes(), r.to_le_bytes()].concat())
            .collect();
        wav(2, 16, 1, &data)
    }

    fn run(
        input: &[u8],
        options: Options,
        piece: usize,
    ) -> Result<(Vec<u8>, Plan), TranscodeError> {
        let mut t = Transcoder::new(options, input.len() as u64);
        let mut out = Vec::new();
        let mut plan_seen = None;
        for p in input.chunks(piece.max(1)) {
            if let Some(plan) = t.feed(p, &mut out)? {
                assert!(plan_seen.is_none(), "plan returned twice");
                assert!(out.len() as u64 >= wav::G711_HEADER_LEN);
                plan_seen = Some(plan);
            }
        }
        let plan = t.finish()?;
        assert_eq!(Some(plan), plan_seen);
        assert_eq!(
            out.len() as u64,
            plan.output_len,
            "length promised by the header"
        );
        Ok((out, plan))
    }

    fn opts(downmix: Downmix) -> Options {
        Options {
            codec: Codec::Alaw,
            downmix,
        }
    }

    const FRAMES: [(i16, i16); 7] = [
        (0, 0),
        (1, 2),
        (-3, 0),
        (32767, 32767),
        (-32768, -32768),
        (20000, 20000),
        (-1000, 3001),
    ];

    #[test]
    fn the_simd_loops_match_the_table_on_every_path() {
        // 1,000 frames: whole blocks and a remainder, extremes and a pseudo-random walk.
        let mut state = 0x9e37_79b9_u32;
        let frames: Vec<(i16, i16)> = (0..1000)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                match i % 50 {
                    0 => (i16::MIN, i16::MIN),
                    1 => (i16::MAX, i16::MAX),
                    2 => (i16::MIN, i16::MAX),
                    _ => (state as i16, (state >> 16) as i16),
                }
            })
            .collect();
        let input: Vec<u8> = frames
            .iter()
            .flat_map(|(l, r)| [l.to_le_bytes(), r.to_le_bytes()].concat())
            .collect();
        let mono = &input[..];
        for codec in [Codec::Alaw, Codec::Mulaw] {
            let cases: [(Option<Downmix>, Vec<u8>); 5] = [
                (
                    Some(Downmix::Average),
                    frames
                        .iter()
                        .map(|&(l, r)| codec.encode(mix(Downmix::Average, l.into(), r.into())))
                        .collect(),
                ),
                (
                    Some(Downmix::Sum),
                    frames
                        .iter()
                        .map(|&(l, r)| codec.encode(mix(Downmix::Sum, l.into(), r.into())))
                        .collect(),
                ),
                (
                    Some(Downmix::Left),
                    frames.iter().map(|&(l, _)| codec.encode(l)).collect(),
                ),
                (
                    Some(Downmix::Right),
                    frames.iter().map(|&(_, r)| codec.encode(r)).collect(),
                ),
                (
                    None,
                    mono.chunks_exact(2)
                        .map(|s| codec.encode(i16::from_le_bytes([s[0], s[1]])))
                        .collect(),
                ),
            ];
            for (downmix, want) in cases {
                // The baseline build and the runtime-dispatched one (AVX2 where the CPU has it).
                let mut base = vec![0; want.len()];
                pcm16(&mut base, &input, codec, downmix);
                assert_eq!(base, want, "{codec:?} {downmix:?} baseline");
                let mut fast = vec![0; want.len()];
                pcm16_dispatch(&mut fast, &input, codec, downmix);
                assert_eq!(fast, want, "{codec:?} {downmix:?} dispatched");
            }
        }
    }

    #[test]
    fn every_downmix_matches_its_formula() {
        let input = stereo16(&FRAMES);
        let a = Codec::Alaw;
        let expect = |f: &dyn Fn(i32, i32) -> i32| -> Vec<u8> {
            FRAMES
                .iter()
                .map(|&(l, r)| a.encode(f(i32::from(l), i32::from(r)) as i16))
                .collect()
        };
        let cases: [(Downmix, Vec<u8>); 4] = [
            (Downmix::Average, expect(&|l, r| (l + r + 1) >> 1)),
            (Downmix::Sum, expect(&|l, r| (l + r).clamp(-32768, 32767))),
            (Downmix::Left, expect(&|l, _| l)),
            (Downmix::Right, expect(&|_, r| r)),
        ];
        for (downmix, want) in cases {
            for piece in [1, 3, 4096] {
                let (out, plan) = run(&input, opts(downmix), piece).unwrap();
                assert_eq!(&out[58..65], &want[..], "{downmix:?} piece {piece}");
                assert_eq!(out[65], 0, "7 samples: pad byte");
                assert_eq!(plan.output_channels, 1);
            }
        }
        // The average rounds half up, like ffmpeg: (-3 + 0 + 1) >> 1 = -1, (1 + 2 + 1) >> 1 = 2.
        assert_eq!(((-3 + 1) >> 1), -1);
        let (stereo, plan) = run(&input, opts(Downmix::Stereo), 5).unwrap();
        assert_eq!(plan.output_channels, 2);
        let want: Vec<u8> = FRAMES
            .iter()
            .flat_map(|&(l, r)| [a.encode(l), a.encode(r)])
            .collect();
        assert_eq!(&stereo[58..], &want[..]);
    }

    #[test]
    fn sum_saturates_instead_of_wrapping() {
        let (out, _) = run(
            &stereo16(&[(30000, 30000), (-30000, -30000)]),
            opts(Downmix::Sum),
            64,
        )
        .unwrap();
        assert_eq!(out[58], Codec::Alaw.encode(i16::MAX));
        assert_eq!(out[59], Codec::Alaw.encode(i16::MIN));
    }

    #[test]
    fn other_sample_widths_reduce_to_16_bits() {
        let a = Codec::Alaw;
        let u8data = [0u8, 128, 255];
        let (out, _) = run(&wav(1, 8, 1, &u8data), opts(Downmix::Average), 2).unwrap();
        assert_eq!(
            &out[58..61],
            &[a.encode(-32768), a.encode(0), a.encode(127 << 8)]
        );
        let s24: Vec<u8> = [0x123456i32, -0x123456]
            .iter()
            .flat_map(|v| v.to_le_bytes()[..3].to_vec())
            .collect();
        let (out, _) = run(&wav(1, 24, 1, &s24), opts(Downmix::Average), 2).unwrap();
        assert_eq!(
            &out[58..60],
            &[a.encode(0x1234), a.encode((-0x123456 >> 8) as i16)]
        );
        let f: Vec<u8> = [0.5f32, -1.0, 2.0, f32::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (out, _) = run(&wav(1, 32, 3, &f), opts(Downmix::Average), 3).unwrap();
        assert_eq!(
            &out[58..62],
            &[
                a.encode(16384),
                a.encode(-32768),
                a.encode(32767),
                a.encode(0)
            ]
        );
        let s32: Vec<u8> = [0x7fff_0000i32, -65536]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (out, _) = run(&wav(2, 32, 1, &s32), opts(Downmix::Left), 3).unwrap();
        assert_eq!(out[58], a.encode(0x7fff));
    }

    #[test]
    fn mono_input_ignores_the_downmix() {
        let data: Vec<u8> = [100i16, -100]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        for d in [Downmix::Average, Downmix::Stereo, Downmix::Right] {
            let (out, plan) = run(&wav(1, 16, 1, &data), opts(d), 1).unwrap();
            assert_eq!(plan.output_channels, 1);
            assert_eq!(
                &out[58..],
                &[Codec::Alaw.encode(100), Codec::Alaw.encode(-100)]
            );
        }
    }

    #[test]
    fn trailing_partial_frame_is_dropped_and_reported() {
        let mut input = stereo16(&[(1, 1), (2, 2)]);
        input.extend_from_slice(&[9, 9, 9]);
        // Declared size covers only the whole frames; the 3 bytes are a trailer.
        let (out, plan) = run(&input, opts(Downmix::Average), 1).unwrap();
        assert_eq!(plan.frames(), 2);
        assert_eq!(out.len(), 60);
        // Declared "to the end": the 3 bytes are a partial frame.
        let mut streamed = input.clone();
        streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        let (_, plan) = run(&streamed, opts(Downmix::Average), 2).unwrap();
        assert_eq!(plan.frames(), 2);
        assert_eq!(plan.input.partial_frame_bytes(), 3);
    }

    #[test]
    fn already_g711_is_not_re_encoded() {
        let err = run(&wav(1, 8, 6, &[0xD5; 4]), Options::default(), 64).unwrap_err();
        assert!(matches!(
            err,
            TranscodeError::AlreadyEncoded {
                codec: Codec::Alaw,
                ..
            }
        ));
        assert_eq!(err.to_string(), "already alaw (pcm_alaw 8000Hz 1ch)");
    }

    #[test]
    fn a_stream_shorter_than_announced_is_an_error_not_a_short_file() {
        let input = stereo16(&[(1, 1); 10]);
        let mut t = Transcoder::new(Options::default(), input.len() as u64);
        let mut out = Vec::new();
        t.feed(&input[..input.len() - 6], &mut out).unwrap();
        let err = t.finish().unwrap_err();
        assert_eq!(
            err,
            TranscodeError::StreamEnded {
                expected: 40,
                got: 34
            }
        );
    }

    #[test]
    fn empty_data_chunk_gives_a_58_byte_file() {
        let (out, plan) = run(&wav(2, 16, 1, &[]), Options::default(), 64).unwrap();
        assert_eq!(out.len(), 58);
        assert_eq!(plan.frames(), 0);
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 50);
    }

    #[test]
    fn mulaw_output_uses_tag_7() {
        let o = Options {
            codec: Codec::Mulaw,
            downmix: Downmix::Average,
        };
        let (out, _) = run(&stereo16(&[(0, 0)]), o, 64).unwrap();
        assert_eq!(u16::from_le_bytes([out[20], out[21]]), 7);
        assert_eq!(out[58], 0xFF);
    }

    #[test]
    fn names_parse_both_ways() {
        for d in [
            Downmix::Average,
            Downmix::Sum,
            Downmix::Left,
            Downmix::Right,
            Downmix::Stereo,
        ] {
            assert_eq!(d.name().parse::<Downmix>().unwrap(), d);
        }
        assert!("mid".parse::<Downmix>().unwrap_err().contains("mid"));
    }
}
