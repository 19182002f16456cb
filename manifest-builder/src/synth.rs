//! Synthetic Amazon Connect recordings: PCM s16le, 8 kHz, stereo, customer left and agent right.
//!
//! Deterministic (a seed per recording), so tests and benchmarks are repeatable, and shaped like
//! a call: the two talkers take turns with syllable-like envelopes over a quiet noise floor.

use std::io::Write;

/// Frames per second of a Connect recording.
pub const RATE: u32 = 8000;

/// The (left, right) frames of a synthetic call of `seconds`, from `seed`.
pub fn call_frames(seconds: f64, seed: u32) -> impl Iterator<Item = (i16, i16)> {
    let frames = (seconds * f64::from(RATE)) as u64;
    let mut state = seed | 1;
    let pitch = [(180.0, 110.0), (220.0, 140.0), (205.0, 125.0)][(seed % 3) as usize];
    (0..frames).map(move |i| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = ((state % 64) as i32 - 32) as i16;
        let t = i as f64 / f64::from(RATE);
        let agent_turn = (t / 2.5) as u64 % 2 == 1;
        let f = if agent_turn { pitch.1 } else { pitch.0 };
        let envelope = (t * 3.0 * std::f64::consts::PI).sin().abs();
        let voice = ((t * f * std::f64::consts::TAU).sin() * 0.7
            + (t * 2.0 * f * std::f64::consts::TAU).sin() * 0.3)
            * 9000.0
            * envelope;
        let v = (voice as i16).saturating_add(noise);
        if agent_turn { (noise, v) } else { (v, noise) }
    })
}

/// A complete WAV file of a synthetic call, written with `hound`.
pub fn call_wav(seconds: f64, seed: u32) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::with_capacity((seconds * 32_000.0) as usize + 44));
    write_call(&mut cursor, seconds, seed).expect("writing to memory");
    cursor.into_inner()
}

/// Writes a synthetic call as a WAV to `out` (a file, or memory).
pub fn write_call<W: Write + std::io::Seek>(
    out: W,
    seconds: f64,
    seed: u32,
) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(out, spec)?;
    for (l, r) in call_frames(seconds, seed) {
        w.write_sample(l)?;
        w.write_sample(r)?;
    }
    w.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_connect_shaped_and_deterministic() {
        let wav = call_wav(5.0, 7);
        assert_eq!(wav.len(), 44 + 5 * 32_000);
        let r = hound::WavReader::new(std::io::Cursor::new(&wav)).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(wav, call_wav(5.0, 7));
        assert_ne!(wav, call_wav(5.0, 8));
        // First turn: the customer (left) talks, the agent (right) is near silent.
        let first: Vec<(i16, i16)> = call_frames(2.0, 7).collect();
        let energy = |f: &dyn Fn(&(i16, i16)) -> i16| {
            first.iter().map(|x| i64::from(f(x)).abs()).sum::<i64>()
        };
        assert!(energy(&|x| x.0) > 50 * energy(&|x| x.1));
    }
}
