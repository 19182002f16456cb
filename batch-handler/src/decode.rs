//! Any of our outputs back to 16-bit PCM WAV, streaming, for the tools that want PCM (a player,
//! Transcribe with `MediaFormat=wav`, an analysis pipeline): G.711 A-law or µ-law WAV is expanded
//! by the reference tables, FLAC is decoded by `claxon` (pure Rust) block by block, Ogg Opus
//! by libopus packet by packet (at the recording's rate when libopus decodes at it, else 48 kHz).

use std::io::{Read, Seek, SeekFrom, Write};

use crate::wav::{self, SampleKind};

/// What was decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// `alaw`, `mulaw`, `flac` or `opus`.
    pub from: &'static str,
    /// Channels written.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Frames written.
    pub frames: u64,
}

/// Why an input could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A WAV that is not G.711, or not a WAV at all.
    #[error(transparent)]
    Wav(#[from] wav::WavError),
    /// The FLAC stream is broken.
    #[error("FLAC: {0}")]
    Flac(String),
    /// The Ogg Opus stream is broken.
    #[error(transparent)]
    Opus(#[from] crate::opus::OpusError),
    /// Nothing of ours to decode.
    #[error("{0}")]
    Unsupported(String),
}

/// Writes a 44-byte PCM16 WAV header for `frames` frames.
pub fn write_pcm16_header<W: Write>(
    out: &mut W,
    channels: u16,
    rate: u32,
    frames: u64,
) -> Result<(), DecodeError> {
    let data = frames * u64::from(channels) * 2;
    let riff = u32::try_from(36 + data)
        .map_err(|_| DecodeError::Unsupported(format!("{data} bytes of PCM do not fit a WAV")))?;
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&riff.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    h.extend_from_slice(&(channels * 2).to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&((data as u32).to_le_bytes()));
    out.write_all(&h)?;
    Ok(())
}

/// Decodes `input` (`size` bytes) into a PCM16 WAV on `out`.
pub fn decode<R: Read + Seek, W: Write + Seek>(
    mut input: R,
    size: u64,
    mut out: W,
) -> Result<Decoded, DecodeError> {
    let mut head = [0u8; 4];
    let n = read_full(&mut input, &mut head)?;
    if n == 4 && &head == crate::flac::MAGIC {
        return decode_flac(std::io::Cursor::new(head).chain(input), out);
    }
    if n == 4 && &head == crate::opus::MAGIC {
        input.seek(SeekFrom::Start(0))?;
        return decode_opus(input, out);
    }
    // A WAV: its header, then its G.711 codes.
    let mut header = wav::HeaderReader::new(size);
    let mut buf = vec![0u8; 1 << 16];
    let mut pending = head[..n].to_vec();
    let (data, mut rest) = loop {
        let (used, found) = header.push(&pending)?;
        if let Some(d) = found {
            break (d, pending[used..].to_vec());
        }
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Err(header.end_of_stream().into());
        }
        pending = buf[..n].to_vec();
    };
    let SampleKind::G711(codec) = data.format.kind else {
        return Err(DecodeError::Unsupported(format!(
            "{}: already PCM, nothing to decode",
            data.format.describe()
        )));
    };
    let channels = data.format.channels;
    let frames = data.frames();
    write_pcm16_header(&mut out, channels, data.format.sample_rate, frames)?;
    let mut left = frames * u64::from(channels);
    let mut pcm = Vec::with_capacity(buf.len() * 2);
    loop {
        let take = (rest.len() as u64).min(left) as usize;
        left -= take as u64;
        pcm.clear();
        for &c in &rest[..take] {
            pcm.extend_from_slice(&codec.decode(c).to_le_bytes());
        }
        out.write_all(&pcm)?;
        if left == 0 {
            break;
        }
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Err(DecodeError::Unsupported(format!(
                "the G.711 data ended {left} codes early"
            )));
        }
        rest.clear();
        rest.extend_from_slice(&buf[..n]);
    }
    out.flush()?;
    Ok(Decoded {
        from: codec.name(),
        channels,
        sample_rate: data.format.sample_rate,
        frames,
    })
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Ogg Opus: the header written with no length, the samples as they are decoded, then the header
/// again with the length (known at the last page).
fn decode_opus<R: Read + Seek, W: Write + Seek>(
    input: R,
    mut out: W,
) -> Result<Decoded, DecodeError> {
    let start = out.stream_position()?;
    write_pcm16_header(&mut out, 1, 8000, 0)?;
    let mut bytes = Vec::new();
    let info = crate::opus::decode(input, |pcm| {
        bytes.clear();
        for s in pcm {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        out.write_all(&bytes).map_err(crate::opus::OpusError::Io)
    })?;
    out.seek(SeekFrom::Start(start))?;
    write_pcm16_header(&mut out, info.channels, info.rate, info.frames)?;
    out.seek(SeekFrom::End(0))?;
    out.flush()?;
    Ok(Decoded {
        from: "opus",
        channels: info.channels,
        sample_rate: info.rate,
        frames: info.frames,
    })
}

fn decode_flac<R: Read, W: Write>(input: R, mut out: W) -> Result<Decoded, DecodeError> {
    let flac = |e: claxon::Error| DecodeError::Flac(e.to_string());
    let mut reader = claxon::FlacReader::new(input).map_err(flac)?;
    let info = reader.streaminfo();
    let Some(frames) = info.samples else {
        return Err(DecodeError::Unsupported(
            "a FLAC stream without its sample count (not written by this tool)".into(),
        ));
    };
    if info.bits_per_sample != 16 {
        return Err(DecodeError::Unsupported(format!(
            "{}-bit FLAC (this tool writes 16-bit)",
            info.bits_per_sample
        )));
    }
    let channels = info.channels as u16;
    write_pcm16_header(&mut out, channels, info.sample_rate, frames)?;
    let mut blocks = reader.blocks();
    let mut buffer = Vec::new();
    let mut pcm = Vec::new();
    let mut written = 0u64;
    while let Some(block) = blocks.read_next_or_eof(buffer).map_err(flac)? {
        pcm.clear();
        for i in 0..block.duration() {
            for ch in 0..u32::from(channels) {
                pcm.extend_from_slice(&(block.sample(ch, i) as i16).to_le_bytes());
            }
        }
        out.write_all(&pcm)?;
        written += u64::from(block.duration());
        buffer = block.into_buffer();
    }
    if written != frames {
        return Err(DecodeError::Flac(format!(
            "{written} frames decoded, the header says {frames}"
        )));
    }
    out.flush()?;
    Ok(Decoded {
        from: "flac",
        channels,
        sample_rate: info.sample_rate,
        frames,
    })
}

/// A PCM16 WAV of interleaved `samples` (for the unit tests of the codecs).
#[cfg(test)]
pub(crate) fn pcm16_wav(channels: u16, rate: u32, samples: &[i16]) -> Vec<u8> {
    let mut w = Vec::new();
    let frames = (samples.len() / usize::from(channels)) as u64;
    write_pcm16_header(&mut w, channels, rate, frames).expect("a test WAV fits");
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::{Downmix, Options, Transcoder};

    use super::pcm16_wav as wav;

    fn dec(input: &[u8]) -> Result<(Decoded, Vec<u8>), DecodeError> {
        let mut out = std::io::Cursor::new(Vec::new());
        let d = decode(std::io::Cursor::new(input), input.len() as u64, &mut out)?;
        Ok((d, out.into_inner()))
    }

    #[test]
    fn opus_decodes_to_a_wav_of_the_right_length_and_channels() {
        let samples: Vec<i16> = (0..2 * 8123)
            .map(|i| (((i / 2) as f64 * if i % 2 == 0 { 0.3 } else { 0.11 }).sin() * 9000.0) as i16)
            .collect();
        let input = wav(2, 8000, &samples);
        let (_, out) = crate::encode::encode_wav(
            &input[..],
            input.len() as u64,
            std::io::Cursor::new(Vec::new()),
            Downmix::Stereo,
            crate::encode::Spooled::Opus { bitrate: 16000 },
        )
        .unwrap();
        let ogg = out.into_inner();
        let (d, back) = dec(&ogg).unwrap();
        assert_eq!(
            (d.from, d.channels, d.sample_rate, d.frames),
            ("opus", 2, 8000, 8123)
        );
        assert_eq!(back.len(), 44 + 8123 * 4);
        assert_eq!(
            &back[..44],
            &wav(2, 8000, &samples)[..44],
            "the same header"
        );
    }

    #[test]
    fn flac_decodes_back_to_the_same_pcm() {
        let samples: Vec<i16> = (0..2 * 9000)
            .map(|i| ((i * 7919) % 65536 - 32768) as i16)
            .collect();
        for rate in [8000, 16000, 44100] {
            let input = wav(2, rate, &samples);
            let (_, out) = crate::encode::encode_wav(
                &input[..],
                input.len() as u64,
                std::io::Cursor::new(Vec::new()),
                Downmix::Stereo,
                crate::encode::Spooled::Flac,
            )
            .unwrap();
            let flac = out.into_inner();
            let (d, back) = dec(&flac).unwrap();
            assert_eq!(
                (d.from, d.channels, d.sample_rate, d.frames),
                ("flac", 2, rate, 9000)
            );
            assert_eq!(back, input, "bit-exact at {rate} Hz");
        }
    }

    #[test]
    fn alaw_decodes_by_the_reference_table() {
        let samples: Vec<i16> = (0..1000).map(|i| (i * 61 - 30000) as i16).collect();
        let input = wav(1, 8000, &samples);
        let mut t = Transcoder::new(Options::default(), input.len() as u64);
        let mut alaw = Vec::new();
        t.feed(&input, &mut alaw).unwrap();
        t.finish().unwrap();
        let (d, back) = dec(&alaw).unwrap();
        assert_eq!((d.from, d.frames), ("alaw", 1000));
        let want: Vec<u8> = samples
            .iter()
            .flat_map(|&s| {
                crate::Codec::Alaw
                    .decode(crate::Codec::Alaw.encode(s))
                    .to_le_bytes()
            })
            .collect();
        assert_eq!(&back[44..], &want[..]);
    }

    #[test]
    fn pcm_and_garbage_are_refused_with_a_reason() {
        let pcm = wav(1, 8000, &[1, 2, 3]);
        let e = dec(&pcm).unwrap_err();
        assert!(e.to_string().contains("already PCM"), "{e}");
        let e = dec(b"hello world").unwrap_err();
        assert!(e.to_string().contains("RIFF"), "{e}");
        let e = dec(b"fLaC\0\0").unwrap_err();
        assert!(e.to_string().starts_with("FLAC"), "{e}");
        let e = dec(&[]).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = dec(b"OggS\0\0\0").unwrap_err();
        assert!(e.to_string().starts_with("Ogg Opus"), "{e}");
    }
}
