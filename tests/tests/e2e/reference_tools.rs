//! The transcoder against the tools users know: ffmpeg, sox and CPython's audioop.
//!
//! ffmpeg and sox are not the G.711 reference quantizer (`audio.md` §1.3), so their A-law must
//! decode to within one quantization step of ours; the downmix must equal ffmpeg's exactly; and
//! the encoder must equal audioop (Sun g711.c) byte for byte. The tools are optional locally
//! (loud skip) and required in CI (`E2E_REQUIRE_TOOLS=1`).

use std::path::{Path, PathBuf};
use std::process::Command;

use batch_handler::transcode::Transcoder;
use batch_handler::{Codec, Options};
use e2e_tests::*;

fn tool(cmd: &str, test: &str) -> bool {
    require_tool(cmd, test)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("e2e-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn ours(input: &[u8], options: Options) -> Vec<u8> {
    let mut t = Transcoder::new(options, input.len() as u64);
    let mut out = Vec::new();
    t.feed(input, &mut out).unwrap();
    t.finish().unwrap();
    out
}

/// Data chunk of a WAV (first `data` chunk, walking chunks).
fn data_chunk(wav: &[u8]) -> &[u8] {
    let mut i = 12;
    while i + 8 <= wav.len() {
        let size = u32::from_le_bytes(wav[i + 4..i + 8].try_into().unwrap()) as usize;
        if &wav[i..i + 4] == b"data" {
            return &wav[i + 8..(i + 8 + size).min(wav.len())];
        }
        i += 8 + size + (size & 1);
    }
    panic!("no data chunk");
}

/// Every code is the reference's or one of its two neighbouring quantization levels.
fn assert_within_one_step(theirs: &[u8], reference: &[u8], who: &str) -> f64 {
    assert_eq!(theirs.len(), reference.len(), "{who}: sample count");
    let a = Codec::Alaw;
    let mut levels: Vec<i16> = (0..=255u8).map(|c| a.decode(c)).collect();
    levels.sort_unstable();
    levels.dedup();
    let rank = |c: u8| levels.binary_search(&a.decode(c)).unwrap() as i64;
    let mut differ = 0;
    for (i, (&t, &r)) in theirs.iter().zip(reference).enumerate() {
        if t == r {
            continue;
        }
        differ += 1;
        assert!(
            (rank(t) - rank(r)).abs() <= 1,
            "{who}: sample {i}: {t:#04x} ({}) vs reference {r:#04x} ({}): more than one level apart",
            a.decode(t),
            a.decode(r)
        );
    }
    differ as f64 / reference.len() as f64
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn ffmpeg_header_is_ours_its_downmix_is_ours_and_its_alaw_is_within_one_step() {
    let test = "ffmpeg_cross_check";
    if !tool("ffmpeg", test) {
        return;
    }
    let input = connect_wav(20.0);
    let (inp, alaw, pcm) = (
        scratch("ff-in.wav"),
        scratch("ff-alaw.wav"),
        scratch("ff-mono.wav"),
    );
    write(&inp, &input);
    let ff = |args: &[&str], out: &Path| {
        run_tool(
            Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
                .arg(&inp)
                .args(args)
                .args(["-fflags", "+bitexact"])
                .arg(out),
        );
    };
    ff(&["-ac", "1", "-c:a", "pcm_alaw"], &alaw);
    ff(&["-ac", "1", "-c:a", "pcm_s16le"], &pcm);
    let mine = ours(&input, Options::default());
    let theirs = std::fs::read(&alaw).unwrap();
    assert_eq!(
        &theirs[..58],
        &mine[..58],
        "the 58-byte header is ffmpeg's -fflags +bitexact header"
    );
    let share = assert_within_one_step(data_chunk(&theirs), &mine[58..], "ffmpeg pcm_alaw");
    eprintln!(
        "ffmpeg pcm_alaw differs from the G.711 reference on {:.1} % of samples (one step each)",
        share * 100.0
    );
    assert!(
        share < 0.2,
        "ffmpeg differs on {share}: more than its known non-reference rounding"
    );
    // ffmpeg's -ac 1 downmix, encoded with the reference table, is exactly our output.
    let mono = std::fs::read(&pcm).unwrap();
    let encoded: Vec<u8> = data_chunk(&mono)
        .chunks_exact(2)
        .map(|s| Codec::Alaw.encode(i16::from_le_bytes([s[0], s[1]])))
        .collect();
    assert_eq!(
        encoded,
        &mine[58..],
        "average downmix is bit-exact with ffmpeg -ac 1"
    );
}

#[test]
fn sox_header_is_ours_and_its_alaw_is_within_one_step() {
    let test = "sox_cross_check";
    if !tool("sox", test) {
        return;
    }
    let input = connect_wav(20.0);
    let (inp, alaw) = (scratch("sox-in.wav"), scratch("sox-alaw.wav"));
    write(&inp, &input);
    run_tool(
        Command::new("sox")
            .arg("-D")
            .arg(&inp)
            .args(["-c", "1", "-e", "a-law"])
            .arg(&alaw),
    );
    let mine = ours(&input, Options::default());
    let theirs = std::fs::read(&alaw).unwrap();
    assert_eq!(
        &theirs[..58],
        &mine[..58],
        "sox writes the same 58-byte header"
    );
    let share = assert_within_one_step(data_chunk(&theirs), &mine[58..], "sox -D a-law");
    eprintln!(
        "sox -D a-law differs from the G.711 reference on {:.1} % of samples (one step each)",
        share * 100.0
    );
}

#[test]
fn encoder_is_byte_exact_with_cpython_audioop() {
    let test = "audioop_cross_check";
    if !tool("python3", test) {
        return;
    }
    let probe = Command::new("python3")
        .args(["-W", "ignore", "-c", "import audioop"])
        .output()
        .unwrap();
    if !probe.status.success() {
        return missing("CPython's audioop module (Python <= 3.12)", test);
    }
    // Mono PCM: the full ramp, then a call's average downmix.
    let mut samples: Vec<i16> = (i16::MIN..=i16::MAX).collect();
    samples.extend(
        connect_pcm(5.0)
            .iter()
            .map(|&(l, r)| ((i32::from(l) + i32::from(r) + 1) >> 1) as i16),
    );
    let pcm: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let (src, a, u) = (
        scratch("ramp.pcm"),
        scratch("ramp.alaw"),
        scratch("ramp.ulaw"),
    );
    write(&src, &pcm);
    let script = "import audioop,sys\nd=open(sys.argv[1],'rb').read()\nopen(sys.argv[2],'wb').write(audioop.lin2alaw(d,2))\nopen(sys.argv[3],'wb').write(audioop.lin2ulaw(d,2))";
    run_tool(
        Command::new("python3")
            .args(["-W", "ignore", "-c", script])
            .arg(&src)
            .arg(&a)
            .arg(&u),
    );
    for (codec, path) in [(Codec::Alaw, &a), (Codec::Mulaw, &u)] {
        let theirs = std::fs::read(path).unwrap();
        let mine: Vec<u8> = samples.iter().map(|&s| codec.encode(s)).collect();
        let first = theirs.iter().zip(&mine).position(|(t, m)| t != m);
        assert_eq!(
            first, None,
            "{codec:?} differs from audioop at sample {first:?}"
        );
        assert_eq!(theirs.len(), mine.len());
    }
}

/// `batch-handler transcode --codec flac` and `decode` against the reference tools: `flac -t`
/// accepts the stream (its MD5 included), `flac -d` gives back the input's PCM, for mono and
/// stereo, 8 and 16 kHz, and 24-bit input (rounded to 16 bits); `decode` of a FLAC equals
/// `flac -d`, and `decode` of our A-law equals ffmpeg's decoding of it.
#[test]
fn flac_output_and_decode_match_the_reference_tools() {
    let test = "flac_reference";
    let Some(bin) = require_binary("batch-handler", test) else {
        return;
    };
    if !tool("flac", test) || !tool("ffmpeg", test) {
        return;
    }
    let pcm = connect_wav(4.0);
    let input = scratch("flac-in.wav");
    std::fs::write(&input, &pcm).unwrap();
    let sixteen = scratch("flac-in16k.wav");
    run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&input)
            .args(["-ar", "16000", "-c:a", "pcm_s24le"])
            .arg(&sixteen),
    );
    for (src, downmix) in [
        (&input, "stereo"),
        (&input, "average"),
        (&sixteen, "stereo"),
    ] {
        let flac = scratch(&format!("out-{downmix}.flac"));
        run_tool(
            Command::new(&bin)
                .args(["transcode", "--codec", "flac", "--downmix", downmix])
                .arg(src)
                .arg(&flac),
        );
        run_tool(Command::new("flac").args(["-t", "-s"]).arg(&flac));
        let theirs = scratch(&format!("theirs-{downmix}.wav"));
        run_tool(
            Command::new("flac")
                .args(["-d", "-f", "-s", "-o"])
                .arg(&theirs)
                .arg(&flac),
        );
        let mine = scratch(&format!("mine-{downmix}.wav"));
        run_tool(Command::new(&bin).arg("decode").arg(&flac).arg(&mine));
        let (theirs, mine) = (
            std::fs::read(&theirs).unwrap(),
            std::fs::read(&mine).unwrap(),
        );
        assert_eq!(
            theirs[44..],
            mine[44..],
            "decode equals flac -d ({downmix})"
        );
        // What the encoder was given: the input's PCM (ffmpeg rounds the 24-bit input to 16).
        let want = scratch(&format!("want-{downmix}.raw"));
        let ac = if downmix == "stereo" { "2" } else { "1" };
        let mut ff = Command::new("ffmpeg");
        ff.args(["-v", "error", "-y", "-i"]).arg(src);
        if downmix == "average" {
            // ffmpeg's -ac 1 is the same (L+R+1)>>1 average (checked by the G.711 tests).
            ff.args(["-ac", ac]);
        }
        run_tool(ff.args(["-f", "s16le"]).arg(&want));
        let want = std::fs::read(&want).unwrap();
        if src == &input {
            assert_eq!(&theirs[44..], &want[..], "bit-exact ({downmix})");
        } else {
            // 24-bit → 16-bit: ours rounds to the nearest step, ffmpeg's default conversion
            // truncates: within one step.
            assert_eq!(theirs.len() - 44, want.len());
            let worst = theirs[44..]
                .chunks(2)
                .zip(want.chunks(2))
                .map(|(a, b)| {
                    (i32::from(i16::from_le_bytes([a[0], a[1]]))
                        - i32::from(i16::from_le_bytes([b[0], b[1]])))
                    .abs()
                })
                .max()
                .unwrap();
            assert!(worst <= 1, "{worst} steps apart");
        }
    }
    let alaw = scratch("decode-alaw.wav");
    run_tool(Command::new(&bin).arg("transcode").arg(&input).arg(&alaw));
    let mine = scratch("decode-alaw-pcm.wav");
    run_tool(Command::new(&bin).arg("decode").arg(&alaw).arg(&mine));
    let theirs = scratch("decode-alaw-ff.raw");
    run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&alaw)
            .args(["-f", "s16le"])
            .arg(&theirs),
    );
    assert_eq!(
        std::fs::read(&mine).unwrap()[44..],
        std::fs::read(&theirs).unwrap()[..],
        "decode of A-law equals ffmpeg's"
    );
}

/// The two-talker speech call of `scripts/speech-call.sh` (espeak-ng voices, 8 kHz stereo).
fn speech_call(test: &str) -> Option<PathBuf> {
    if !tool("espeak-ng", test) || !tool("sox", test) {
        return None;
    }
    let out = scratch("speech-call.wav");
    if !out.exists() {
        run_tool(Command::new(scripts_dir().join("speech-call.sh")).arg(&out));
    }
    Some(out)
}

/// The linear samples of a G.711 A-law WAV's data chunk.
fn alaw_pcm(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    data_chunk(&bytes)
        .iter()
        .map(|&c| f64::from(Codec::Alaw.decode(c)))
        .collect()
}

/// Signal-to-difference ratio of `a` against the reference `b`, in dB.
fn snr(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "sample count");
    let signal: f64 = b.iter().map(|v| v * v).sum();
    let noise: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    10.0 * (signal / noise).log10()
}

/// G.711 from 11.025 to 96 kHz: `transcode` resamples to 8 kHz (rubato's FFT resampler) to the
/// length `ceil(frames * 8000 / rate)`, lined up with the input. The stated tolerance: decoded,
/// it is within 33 dB SNR of sox's very-high-quality resample of the same input (A-law's own
/// quantization noise is about 38 dB down), and no further from sox than ffmpeg's resampler is.
#[test]
fn resampled_alaw_is_as_close_to_sox_as_ffmpeg_is() {
    let test = "resampled_alaw";
    let Some(bin) = require_binary("batch-handler", test) else {
        return;
    };
    if !tool("ffmpeg", test) {
        return;
    }
    let Some(call) = speech_call(test) else {
        return;
    };
    for rate in [11025u32, 16000, 22050, 32000, 44100, 48000, 96000] {
        let input = scratch(&format!("rs-in-{rate}.wav"));
        // The call at `rate`, by sox (very high quality, no dither: the same bytes every run).
        run_tool(
            Command::new("sox")
                .args(["-D", "-V1"])
                .arg(&call)
                .args(["-r", &rate.to_string()])
                .arg(&input),
        );
        let ours = scratch(&format!("rs-ours-{rate}.wav"));
        run_tool(Command::new(&bin).arg("transcode").arg(&input).arg(&ours));
        let sox = scratch(&format!("rs-sox-{rate}.wav"));
        run_tool(
            Command::new("sox")
                .args(["-D", "-V1"])
                .arg(&input)
                .args(["-r", "8000", "-c", "1", "-e", "a-law"])
                .arg(&sox),
        );
        let ff = scratch(&format!("rs-ff-{rate}.wav"));
        run_tool(
            Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-i"])
                .arg(&input)
                .args(["-ar", "8000", "-ac", "1", "-c:a", "pcm_alaw"])
                .arg(&ff),
        );
        let (ours, sox, ff) = (alaw_pcm(&ours), alaw_pcm(&sox), alaw_pcm(&ff));
        assert_eq!(ours.len(), 144_000, "{rate} Hz: 18 s at 8 kHz");
        let (ours_sox, ff_sox) = (snr(&ours, &sox), snr(&ff, &sox));
        eprintln!("{rate} Hz: ours vs sox {ours_sox:.1} dB, ffmpeg vs sox {ff_sox:.1} dB");
        assert!(
            ours_sox >= 33.0,
            "{rate} Hz: {ours_sox:.1} dB from sox's resample"
        );
        assert!(
            ours_sox >= ff_sox - 1.0,
            "{rate} Hz: ours {ours_sox:.1} dB, ffmpeg {ff_sox:.1} dB from sox"
        );
    }
}

/// Opus against the reference tools on a two-talker speech call: `opusdec` and ffmpeg decode
/// our Ogg to the input's length and channel count, and the quality figure holds: PESQ
/// narrowband (ITU-T P.862, `scripts/quality.py`) at least 3.3 on each channel at the default
/// 16 kb/s per channel (A-law measures 3.8 to 4.0 on the same call), and each talker at least
/// 30 dB down on the other's channel (the channels stay apart). Mono (the average downmix) is
/// held to the same PESQ floor against ffmpeg's downmix of the call.
#[test]
fn opus_decodes_with_opusdec_and_ffmpeg_and_keeps_its_quality_floor() {
    let test = "opus_reference";
    let Some(bin) = require_binary("batch-handler", test) else {
        return;
    };
    if !tool("opusdec", test) || !tool("ffmpeg", test) {
        return;
    }
    let Some(python) = quality_python(test) else {
        return;
    };
    let Some(call) = speech_call(test) else {
        return;
    };
    let frames = (std::fs::metadata(&call).unwrap().len() - 44) / 4;
    let mono_ref = scratch("opus-mono-ref.wav");
    run_tool(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&call)
            .args(["-ac", "1", "-c:a", "pcm_s16le"])
            .arg(&mono_ref),
    );
    for (downmix, channels, reference) in [("stereo", 2u16, &call), ("average", 1, &mono_ref)] {
        let ogg = scratch(&format!("opus-{downmix}.ogg"));
        run_tool(
            Command::new(&bin)
                .args(["transcode", "--codec", "opus", "--downmix", downmix])
                .arg(&call)
                .arg(&ogg),
        );
        let dec = scratch(&format!("opus-{downmix}.wav"));
        run_tool(
            Command::new("opusdec")
                .args(["--quiet", "--rate", "8000"])
                .arg(&ogg)
                .arg(&dec),
        );
        let wav = std::fs::read(&dec).unwrap();
        assert_eq!(
            u16::from_le_bytes([wav[22], wav[23]]),
            channels,
            "{downmix}"
        );
        assert_eq!(
            (wav.len() as u64 - 44) / (2 * u64::from(channels)),
            frames,
            "{downmix}: opusdec gives the input's length"
        );
        let raw = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&ogg)
            .args(["-f", "s16le", "-"])
            .output()
            .unwrap();
        assert!(raw.status.success());
        assert_eq!(
            raw.stdout.len() as u64,
            frames * 6 * 2 * u64::from(channels),
            "{downmix}: ffmpeg gives the input's length at 48 kHz"
        );
        // Our own decoder agrees with opusdec on the length and the header.
        let ours = scratch(&format!("opus-{downmix}-ours.wav"));
        run_tool(Command::new(&bin).arg("decode").arg(&ogg).arg(&ours));
        assert_eq!(std::fs::read(&ours).unwrap().len(), wav.len());
        let q = Command::new(&python)
            .arg(scripts_dir().join("quality.py"))
            .arg(reference)
            .arg(&dec)
            .output()
            .unwrap();
        assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
        let q: serde_json::Value = serde_json::from_slice(&q.stdout).unwrap();
        eprintln!("opus {downmix}: {q}");
        for score in q["pesq_nb"].as_array().unwrap() {
            assert!(score.as_f64().unwrap() >= 3.3, "{downmix}: PESQ {q}");
        }
        if channels == 2 {
            for leak in q["crosstalk_db"].as_array().unwrap() {
                assert!(leak.as_f64().unwrap() <= -30.0, "channels blur: {q}");
            }
        }
    }
}
