//! Sample-rate conversion of interleaved 16-bit PCM, streaming: rubato's synchronous FFT
//! resampler (a fixed ratio, anti-aliased by a Blackman-Harris-windowed low-pass at about 95 %
//! of the lower Nyquist frequency), fed in pieces of any size, its start-up delay trimmed and its
//! tail flushed so that `n` input frames give exactly `ceil(n * to / from)` output frames, lined
//! up with the input. Memory is one chunk whatever the recording's length.
//!
//! Used for G.711 (which is 8 kHz by definition) from 11.025 to 96 kHz input, and for Opus from a
//! rate the codec does not take (11.025, 22.05, 32, 44.1 kHz) to the next one it does.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _, WindowFunction};

/// Input rates converted (the common capture rates); others are refused by name.
pub const RATES: &[u32] = &[
    8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000,
];

/// Frames per resampler call on the smaller side, at least (rounded up to a whole FFT block).
const CHUNK: usize = 1024;

/// What can go wrong resampling.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// A rate outside [`RATES`].
    #[error("sample rate {0} Hz is not resampled (rates taken: {list})", list = rate_list())]
    Rate(u32),
    /// rubato refused (should not happen with the rates above).
    #[error("resampler: {0}")]
    Rubato(String),
}

fn rate_list() -> String {
    RATES
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

fn rubato_err(e: impl std::fmt::Display) -> ResampleError {
    ResampleError::Rubato(e.to_string())
}

/// A streaming converter from `from` Hz to `to` Hz of `channels` interleaved channels.
pub struct Resampler {
    fft: Fft<f32>,
    channels: usize,
    from: u32,
    to: u32,
    /// Input samples waiting for a whole chunk (interleaved, as f32).
    pending: Vec<f32>,
    /// One call's output.
    out: Vec<f32>,
    /// Output frames of start-up delay still to drop.
    trim: usize,
    frames_in: u64,
    frames_out: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("channels", &self.channels)
            .finish()
    }
}

impl Resampler {
    /// A resampler for `channels` channels from `from` Hz (one of [`RATES`]) to `to` Hz.
    pub fn new(from: u32, to: u32, channels: u16) -> Result<Self, ResampleError> {
        if !RATES.contains(&from) {
            return Err(ResampleError::Rate(from));
        }
        let channels = usize::from(channels.max(1));
        // Both FFT sizes even: with an odd size rubato's delay is half a sample off, which
        // would shift the output against the input (seen as 0.36 of a sample from 11.025 kHz).
        let gcd = gcd(from, to);
        let step = 2 * (from / gcd) as usize;
        // At least CHUNK frames on each side: the FFT's length is the filter's resolution, and
        // 96 kHz to 8 kHz with 1024 input frames would leave 86 output frames to filter with.
        let want = (CHUNK as u64 * u64::from(from) / u64::from(to)).max(CHUNK as u64) as usize;
        let chunk = want.div_ceil(step) * step;
        let fft = Fft::<f32>::new_custom(
            from as usize,
            to as usize,
            chunk,
            1,
            channels,
            WindowFunction::BlackmanHarris2,
            FixedSync::Input,
        )
        .map_err(rubato_err)?;
        let trim = fft.output_delay();
        let max_out = fft.output_frames_max();
        let chunk_in = fft.input_frames_next();
        Ok(Resampler {
            fft,
            channels,
            from,
            to,
            pending: Vec::with_capacity(chunk_in * channels),
            out: vec![0.0; max_out * channels],
            trim,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Output frames that `frames` input frames give.
    pub fn output_frames(from: u32, to: u32, frames: u64) -> u64 {
        (u128::from(frames) * u128::from(to)).div_ceil(u128::from(from)) as u64
    }

    /// Takes interleaved samples (whole frames, across calls); appends what is ready to `out`.
    pub fn push(&mut self, pcm: &[i16], out: &mut Vec<i16>) -> Result<(), ResampleError> {
        let chunk = self.fft.input_frames_next() * self.channels;
        self.frames_in += (pcm.len() / self.channels) as u64;
        for &s in pcm {
            self.pending.push(f32::from(s) / 32768.0);
            if self.pending.len() == chunk {
                self.run(None, out)?;
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// Flushes the tail: exactly `ceil(frames_in * to / from)` frames in all have been appended.
    pub fn finish(&mut self, out: &mut Vec<i16>) -> Result<(), ResampleError> {
        let want = Self::output_frames(self.from, self.to, self.frames_in);
        let partial = self.pending.len() / self.channels;
        if partial > 0 || self.frames_out < want {
            let chunk = self.fft.input_frames_next() * self.channels;
            self.pending.resize(chunk, 0.0);
            self.run(Some(partial), out)?;
        }
        let mut guard = 0;
        while self.frames_out < want {
            self.pending.iter_mut().for_each(|s| *s = 0.0);
            self.run(Some(0), out)?;
            guard += 1;
            if guard > 64 {
                return Err(ResampleError::Rubato(
                    "the resampler stopped producing output".into(),
                ));
            }
        }
        let extra = (self.frames_out - want) as usize * self.channels;
        out.truncate(out.len() - extra);
        self.frames_out = want;
        Ok(())
    }

    fn run(&mut self, partial: Option<usize>, out: &mut Vec<i16>) -> Result<(), ResampleError> {
        let frames_in = self.pending.len() / self.channels;
        let input = InterleavedSlice::new(&self.pending[..], self.channels, frames_in)
            .map_err(rubato_err)?;
        let frames_out = self.out.len() / self.channels;
        let mut output = InterleavedSlice::new_mut(&mut self.out[..], self.channels, frames_out)
            .map_err(rubato_err)?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            partial_len: partial,
            active_channels_mask: None,
        };
        let (_, produced) = self
            .fft
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(rubato_err)?;
        let skip = self.trim.min(produced);
        self.trim -= skip;
        for &s in &self.out[skip * self.channels..produced * self.channels] {
            out.push((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16);
        }
        self.frames_out += (produced - skip) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, frames: usize, channels: usize) -> Vec<i16> {
        (0..frames * channels)
            .map(|i| {
                let t = (i / channels) as f64 / f64::from(rate);
                let phase = if i % channels == 1 { 1.0 } else { 0.0 };
                ((2.0 * std::f64::consts::PI * hz * t + phase).sin() * 12000.0) as i16
            })
            .collect()
    }

    fn resample(from: u32, to: u32, channels: u16, input: &[i16], piece: usize) -> Vec<i16> {
        let mut r = Resampler::new(from, to, channels).unwrap();
        let mut out = Vec::new();
        let step = piece - piece % usize::from(channels);
        for p in input.chunks(step.max(usize::from(channels))) {
            r.push(p, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn the_output_has_exactly_the_promised_length_and_lines_up() {
        for (from, frames) in [
            (16000, 16000),
            (44100, 12345),
            (11025, 9000),
            (22050, 20000),
            (48000, 30000),
            (11025, 7),
            (48000, 0),
        ] {
            let input = tone(from, 500.0, frames, 2);
            let out = resample(from, 8000, 2, &input, 999);
            let want = Resampler::output_frames(from, 8000, frames as u64) as usize;
            assert_eq!(out.len(), want * 2, "{from} Hz, {frames} frames");
            if frames > 4000 {
                // Lined up to a fraction of a sample: no delay, no half-sample shift.
                // The 500 Hz tone at 8 kHz: compare with the same tone computed directly.
                let direct = tone(8000, 500.0, want, 2);
                let mid = want / 2;
                let err: f64 = (mid..mid + 400)
                    .map(|i| (f64::from(out[i]) - f64::from(direct[i])).abs())
                    .sum::<f64>()
                    / 400.0;
                assert!(err < 10.0, "{from} Hz: mean error {err} (of 12000)");
            }
        }
    }

    #[test]
    fn how_the_input_is_cut_does_not_change_the_output() {
        let input = tone(16000, 700.0, 5000, 1);
        assert_eq!(
            resample(16000, 8000, 1, &input, 1),
            resample(16000, 8000, 1, &input, 100_000)
        );
    }

    #[test]
    fn what_is_above_the_new_nyquist_is_filtered_out() {
        // 6 kHz at 16 kHz has no place at 8 kHz: it must not fold back to 2 kHz.
        let input = tone(16000, 6000.0, 16000, 1);
        let out = resample(16000, 8000, 1, &input, 4096);
        let rms = (out[1000..7000]
            .iter()
            .map(|&s| f64::from(s).powi(2))
            .sum::<f64>()
            / 6000.0)
            .sqrt();
        assert!(rms < 100.0, "aliased energy left: rms {rms} of 8485");
    }

    #[test]
    fn odd_rates_are_refused_by_name() {
        let e = Resampler::new(12345, 8000, 1).unwrap_err().to_string();
        assert!(e.contains("12345 Hz") && e.contains("44100"), "{e}");
    }
}
