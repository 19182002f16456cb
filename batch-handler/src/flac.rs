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
