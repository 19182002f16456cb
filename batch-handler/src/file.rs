//! Converting a local file, the `transcode` command's path: the header is read in order, then the
//! audio is read through memory-mapped windows spread over the cores, and each window's codes are
//! written at their own offset in the output.
//!
//! The bytes are those of streaming the file through [`Transcoder::feed`] (the tests compare
//! them), in a fraction of the time on a long recording: once the kernel converts at memory speed,
//! copying the input into a buffer and writing the output are most of the work, and mapping saves
//! the first while the second core overlaps the rest. Memory stays flat: each thread holds one
//! window of input mapped and its output codes.

// The one place this module needs `unsafe`: memory maps of the input file (each use has its SAFETY note).
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

use crate::transcode::{Options, Plan, TranscodeError, Transcoder, convert_frames_into};

/// How the audio is cut up; [`Layout::default`] is what the command uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Input bytes mapped at a time by one thread (rounded down to whole frames).
    pub window: u64,
    /// Threads converting at once; 1 converts in order on the calling thread.
    pub threads: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            window: 8 << 20,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        }
    }
}

/// Why a file could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The input is not a WAV we convert, or is cut short.
    #[error(transparent)]
    Transcode(#[from] TranscodeError),
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Converts `input` into `output`, an empty file; returns the plan (the output is
/// [`Plan::output_len`] bytes long).
///
/// A regular file is read through maps; anything else (a pipe, a device) is streamed in 1 MiB
/// pieces through [`Transcoder::feed`]. The input must not be truncated while it is read: a mapped
/// read past a new end faults, as it would for any program reading a file through a map.
pub fn convert_file(
    input: &File,
    output: &File,
    options: Options,
    layout: Layout,
) -> Result<Plan, FileError> {
    let meta = input.metadata()?;
    if !meta.is_file() {
        return stream(input, output, options);
    }
    let len = meta.len();
    let mut transcoder = Transcoder::new(options, len);
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut at = 0;
    let plan = loop {
        let n = input.read_at(&mut buf, at)?;
        if n == 0 {
            // Ended inside the header: the transcoder says how.
            return Err(transcoder.finish().expect_err("no plan yet").into());
        }
        let (used, plan) = transcoder.feed_header(&buf[..n], &mut head)?;
        at += used as u64;
        if let Some(plan) = plan {
            break plan;
        }
    };
    output.write_all_at(&head, 0)?;
    let out_at = head.len() as u64;
    let per_frame = u64::from(plan.output_channels);
    let frames = plan.frames();
    let align = u64::from(plan.input.format.block_align);
    let window_frames = (layout.window / align).max(1);
    // A thread per part, but no part shorter than one window.
    let parts = (layout.threads.max(1) as u64).min(frames.div_ceil(window_frames).max(1));
    let part_frames = frames.div_ceil(parts);
    let convert_part = |first: u64, end: u64| -> std::io::Result<()> {
        let mut codes = vec![0; (window_frames * per_frame) as usize];
        let mut frame = first;
        while frame < end {
            let n = window_frames.min(end - frame);
            // SAFETY: read-only map of a file this process keeps open; see the function's doc
            // for what happens if another process truncates it meanwhile.
            let map = unsafe {
                memmap2::MmapOptions::new()
                    .offset(plan.input.offset + frame * align)
                    .len((n * align) as usize)
                    .populate()
                    .map(input)?
            };
            let written = convert_frames_into(&map, &plan.input.format, options, &mut codes);
            output.write_all_at(&codes[..written], out_at + frame * per_frame)?;
            frame += n;
        }
        Ok(())
    };
    if parts == 1 {
        convert_part(0, frames)?;
    } else {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (1..parts)
                .map(|p| {
                    let first = p * part_frames;
                    let end = (first + part_frames).min(frames);
                    scope.spawn(move || convert_part(first, end))
                })
                .collect();
            let mine = convert_part(0, part_frames.min(frames));
            workers
                .into_iter()
                .map(|w| w.join().expect("a conversion thread panicked"))
                .fold(mine, Result::and)
        })?;
    }
    let data_len = frames * per_frame;
    if data_len % 2 == 1 {
        output.write_all_at(&[0], out_at + data_len)?; // RIFF pad byte
    }
    Ok(plan)
}

/// The in-order path for inputs that cannot be mapped.
fn stream(mut input: &File, mut output: &File, options: Options) -> Result<Plan, FileError> {
    // A pipe has no length: the header's sizes are taken as they are.
    let mut transcoder = Transcoder::new(options, u64::MAX);
    let mut buf = vec![0u8; 1 << 20];
    let mut out = Vec::with_capacity(1 << 20);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        transcoder.feed(&buf[..n], &mut out)?;
        output.write_all(&out)?;
        out.clear();
    }
    Ok(transcoder.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, Downmix};

    fn wav(channels: u16, bits: u16, declared: Option<u32>, extra: &[u8], data: &[u8]) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut h = b"RIFF".to_vec();
        h.extend_from_slice(&(36 + extra.len() as u32 + data.len() as u32).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&8000u32.to_le_bytes());
        h.extend_from_slice(&(8000 * u32::from(align)).to_le_bytes());
        h.extend_from_slice(&align.to_le_bytes());
        h.extend_from_slice(&bits.to_le_bytes());
        h.extend_from_slice(extra);
        h.extend_from_slice(b"data");
        h.extend_from_slice(&declared.unwrap_or(data.len() as u32).to_le_bytes());
        h.extend_from_slice(data);
        h
    }

    fn noise(bytes: usize) -> Vec<u8> {
        let mut state = 0x1234_5678_u32;
        (0..bytes)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect()
    }

    fn streamed(input: &[u8], options: Options) -> Result<Vec<u8>, TranscodeError> {
        let mut t = Transcoder::new(options, input.len() as u64);
        let mut out = Vec::new();
        t.feed(input, &mut out)?;
        t.finish()?;
        Ok(out)
    }

    fn converted(input: &[u8], options: Options, layout: Layout) -> Result<Vec<u8>, FileError> {
        let dir = std::env::temp_dir().join(format!("bh-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (inp, outp) = (dir.join(format!("{n}.in")), dir.join(format!("{n}.out")));
        std::fs::write(&inp, input).unwrap();
        let output = File::create(&outp).unwrap();
        let result = convert_file(&File::open(&inp).unwrap(), &output, options, layout);
        let bytes = std::fs::read(&outp).unwrap();
        std::fs::remove_file(&inp).unwrap();
        std::fs::remove_file(&outp).unwrap();
        let plan = result?;
        assert_eq!(
            bytes.len() as u64,
            plan.output_len,
            "length the header promised"
        );
        Ok(bytes)
    }

    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[test]
    fn mapped_windows_on_several_threads_give_the_streamed_bytes() {
        let list_chunk = [b"LIST".as_slice(), &5u32.to_le_bytes(), b"hello\0"].concat();
        let inputs = [
            ("stereo s16", wav(2, 16, None, &[], &noise(40_000))),
            ("odd frame count", wav(2, 16, None, &[], &noise(4 * 1001))),
            (
                "LIST before data",
                wav(2, 16, None, &list_chunk, &noise(4000)),
            ),
            ("mono s16", wav(1, 16, None, &[], &noise(2 * 777))),
            ("stereo s24", wav(2, 24, None, &[], &noise(6 * 500))),
            (
                "partial last frame",
                wav(2, 16, None, &[], &noise(4 * 300 + 3)),
            ),
            ("cut off", wav(2, 16, Some(1 << 20), &[], &noise(4 * 300))),
            ("streamed size 0", wav(2, 16, Some(0), &[], &noise(4 * 300))),
            ("no audio", wav(2, 16, None, &[], &[])),
        ];
        let layouts = [
            Layout::default(),
            Layout {
                window: 4,
                threads: 1,
            },
            Layout {
                window: 1000,
                threads: 2,
            },
            Layout {
                window: 999,
                threads: 3,
            },
        ];
        for (name, input) in &inputs {
            for downmix in [Downmix::Average, Downmix::Stereo, Downmix::Right] {
                for codec in [Codec::Alaw, Codec::Mulaw] {
                    let options = Options { codec, downmix };
                    let want = streamed(input, options).unwrap();
                    for layout in layouts {
                        let got = converted(input, options, layout).unwrap();
                        assert!(got == want, "{name} {options:?} {layout:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_files_fail_as_the_stream_does() {
        let options = Options::default();
        let cases: [(&str, Vec<u8>); 3] = [
            ("not a WAV", b"hello, this is not audio".to_vec()),
            (
                "header cut short",
                wav(2, 16, None, &[], &[])[..30].to_vec(),
            ),
            (
                "already A-law",
                streamed(&wav(2, 16, None, &[], &noise(400)), options).unwrap(),
            ),
        ];
        for (name, input) in cases {
            let want = streamed(&input, options).unwrap_err();
            match converted(&input, options, Layout::default()) {
                Err(FileError::Transcode(got)) => assert_eq!(got, want, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            converted(&[], options, Layout::default()),
            Err(FileError::Transcode(TranscodeError::Wav(
                crate::wav::WavError::Empty
            )))
        ));
    }
}
