//! Property tests of the handler's parsers of untrusted bytes: the WAV header and chunk walker
//! (through the transcoder, fed in any chunking) and the job's `userArguments`. Any input ends in
//! a typed error or a result, never a panic, and the output never outgrows what the header
//! promised. Bounded case counts keep the CI budget fixed; real headers seed the generators.

use std::collections::BTreeMap;

use batch_handler::encode::{Spooled, WavToSpool};
use batch_handler::transcode::Transcoder;
use batch_handler::{Downmix, Options, Settings};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A WAV header with any fields (real ones among them), any extra chunks (odd sizes too), and
/// any audio after it.
fn wav_like() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(1u16), Just(3), Just(0xFFFE), Just(6), any::<u16>()],
        prop_oneof![Just(1u16), Just(2), Just(6), Just(0), any::<u16>()],
        prop_oneof![
            Just(8000u32),
            Just(16000),
            Just(44100),
            Just(11025),
            Just(0),
            any::<u32>()
        ],
        prop_oneof![
            Just(16u16),
            Just(8),
            Just(24),
            Just(32),
            Just(0),
            any::<u16>()
        ],
        prop_oneof![Just(16u32), Just(18), Just(40), 0u32..64, any::<u32>()],
        prop::collection::vec(("[A-Za-z ]{4}", prop_oneof![0u32..9, any::<u32>()]), 0..3),
        prop_oneof![Just(None), any::<u32>().prop_map(Some)],
        prop::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(
            |(tag, channels, rate, bits, fmt_len, extra, data_len, audio)| {
                let align = channels.wrapping_mul(bits) / 8;
                let mut h = b"RIFF".to_vec();
                h.extend_from_slice(&(36 + audio.len() as u32).to_le_bytes());
                h.extend_from_slice(b"WAVE");
                for (id, len) in &extra {
                    h.extend_from_slice(id.as_bytes());
                    h.extend_from_slice(&len.to_le_bytes());
                    h.extend(std::iter::repeat_n(0u8, (*len as usize).min(16)));
                }
                h.extend_from_slice(b"fmt ");
                h.extend_from_slice(&fmt_len.to_le_bytes());
                h.extend_from_slice(&tag.to_le_bytes());
                h.extend_from_slice(&channels.to_le_bytes());
                h.extend_from_slice(&rate.to_le_bytes());
                h.extend_from_slice(&rate.wrapping_mul(u32::from(align)).to_le_bytes());
                h.extend_from_slice(&align.to_le_bytes());
                h.extend_from_slice(&bits.to_le_bytes());
                h.extend(std::iter::repeat_n(
                    0u8,
                    (fmt_len.saturating_sub(16) as usize).min(32),
                ));
                h.extend_from_slice(b"data");
                h.extend_from_slice(&data_len.unwrap_or(audio.len() as u32).to_le_bytes());
                h.extend_from_slice(&audio);
                h
            },
        )
}

fn downmix() -> impl Strategy<Value = Downmix> {
    prop_oneof![
        Just(Downmix::Average),
        Just(Downmix::Sum),
        Just(Downmix::Left),
        Just(Downmix::Right),
        Just(Downmix::Stereo),
    ]
}

/// Feeds `input` in pieces of the given sizes; returns the output or the error's text.
fn transcode(input: &[u8], cuts: &[usize], options: Options) -> Result<Vec<u8>, String> {
    let mut t = Transcoder::new(options, input.len() as u64);
    let mut out = Vec::new();
    let mut rest = input;
    let mut cuts = cuts.iter().cycle();
    while !rest.is_empty() {
        let n = (*cuts.next().unwrap_or(&rest.len())).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        t.feed(piece, &mut out).map_err(|e| e.to_string())?;
        rest = tail;
    }
    let plan = t.finish().map_err(|e| e.to_string())?;
    assert_eq!(
        out.len() as u64,
        plan.output_len,
        "output length is the plan's"
    );
    Ok(out)
}

/// A spooled path (FLAC, Opus, resampled G.711) over `input` fed in `cuts`-sized pieces: the
/// output bytes, or the reason.
fn to_spooled(
    input: &[u8],
    cuts: &[usize],
    downmix: Downmix,
    kind: Spooled,
) -> Result<Vec<u8>, String> {
    let mut conv = WavToSpool::new(
        input.len() as u64,
        std::io::Cursor::new(Vec::new()),
        downmix,
        kind,
    );
    let (mut at, mut i) = (0, 0);
    while at < input.len() && !conv.complete() {
        let n = cuts[i % cuts.len()].min(input.len() - at);
        conv.feed(&input[at..at + n]).map_err(|e| e.to_string())?;
        at += n;
        i += 1;
    }
    conv.finish()
        .map(|(_, out)| out.into_inner())
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn any_wav_like_input_to_a_spooled_codec_is_encoded_and_decodes_back_or_is_refused(
        input in wav_like(),
        cuts in prop::collection::vec(1usize..97, 1..5),
        downmix in downmix(),
        kind in prop_oneof![
            Just(Spooled::Flac),
            Just(Spooled::Opus { bitrate: 16000 }),
            Just(Spooled::G711(batch_handler::Codec::Alaw)),
        ],
    ) {
        let whole = to_spooled(&input, &[input.len().max(1)], downmix, kind);
        let pieces = to_spooled(&input, &cuts, downmix, kind);
        prop_assert_eq!(&whole, &pieces);
        match whole {
            Ok(encoded) => {
                // Whatever was encoded decodes, to a WAV whose frame count the stream announced.
                let mut back = std::io::Cursor::new(Vec::new());
                let d = batch_handler::decode::decode(
                    std::io::Cursor::new(&encoded),
                    encoded.len() as u64,
                    &mut back,
                )
                .map_err(|e| TestCaseError::fail(format!("{kind:?}: {e}")))?;
                let back = back.into_inner();
                prop_assert_eq!(back.len() as u64, 44 + d.frames * u64::from(d.channels) * 2);
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    #[test]
    fn any_bytes_end_in_a_result_or_a_reason(
        input in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(1usize..64, 1..4),
    ) {
        if let Err(reason) = transcode(&input, &cuts, Options::default()) {
            prop_assert!(!reason.is_empty());
        }
    }

    #[test]
    fn any_wav_like_header_in_any_chunking_is_converted_or_refused(
        input in wav_like(),
        cuts in prop::collection::vec(1usize..97, 1..5),
        downmix in downmix(),
    ) {
        let options = Options { downmix, ..Options::default() };
        let whole = transcode(&input, &[input.len().max(1)], options);
        let pieces = transcode(&input, &cuts, options);
        // The chunking never changes the answer.
        prop_assert_eq!(&whole, &pieces);
        if let Ok(out) = whole {
            // 16-bit or wider PCM in, 8-bit codes out: never more than a header plus the input.
            prop_assert!(out.len() <= 58 + input.len() + 1, "{} > {}", out.len(), input.len());
        }
    }

    #[test]
    fn any_user_arguments_are_settings_or_a_named_refusal(
        args in prop::collection::btree_map(
            prop_oneof![
                Just("codec".to_string()), Just("downmix".to_string()),
                Just("storageClass".to_string()), Just("tagKey".to_string()),
                Just("tagValue".to_string()), Just("destBucket".to_string()),
                Just("destPrefix".to_string()), "\\PC{0,12}",
            ],
            "\\PC{0,40}",
            0..6,
        )
    ) {
        let args: BTreeMap<String, String> = args;
        if let Err(e) = Settings::default().with_user_arguments(&args) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
