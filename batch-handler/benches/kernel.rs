//! The conversion kernel alone, in memory: 16-bit stereo PCM to A-law mono, against a plain copy
//! of the same bytes (the floor). Issue 6's target is 4 GB/s of input per core.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use batch_handler::transcode::convert_frames;
use batch_handler::wav::{Format, SampleKind};
use batch_handler::{Downmix, Options};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn connect_pcm(bytes: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..bytes / 2)
        .flat_map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let speech = ((i as f32 * 0.07).sin() * 6000.0) as i16;
            speech
                .wrapping_add((state % 512) as i16 - 256)
                .to_le_bytes()
        })
        .collect()
}

fn kernel(c: &mut Criterion) {
    // 8 MiB: one second of Connect audio is 32 kB; big enough to leave the caches.
    let input = connect_pcm(8 << 20);
    let format = Format {
        kind: SampleKind::Pcm,
        channels: 2,
        sample_rate: 8000,
        bits: 16,
        block_align: 4,
    };
    let mut g = c.benchmark_group("kernel");
    g.throughput(Throughput::Bytes(input.len() as u64));
    let mut out = Vec::with_capacity(input.len());
    for downmix in [Downmix::Average, Downmix::Sum, Downmix::Left] {
        let options = Options {
            downmix,
            ..Options::default()
        };
        g.bench_function(format!("alaw_{}", downmix.name()), |b| {
            b.iter(|| {
                out.clear();
                convert_frames(std::hint::black_box(&input), &format, options, &mut out);
                std::hint::black_box(&out);
            })
        });
    }
    let mut copy = vec![0u8; input.len()];
    g.bench_function("memcpy_floor", |b| {
        b.iter(|| {
            copy.copy_from_slice(std::hint::black_box(&input));
            std::hint::black_box(&copy);
        })
    });
    g.finish();
}

criterion_group!(benches, kernel);
criterion_main!(benches);
