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

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(&inp)
            .args(args)
            .args(["-fflags", "+bitexact"])
            .arg(out));
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
    run(Command::new("sox")
        .arg("-D")
        .arg(&inp)
        .args(["-c", "1", "-e", "a-law"])
        .arg(&alaw));
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
    run(Command::new("python3")
        .args(["-W", "ignore", "-c", script])
        .arg(&src)
        .arg(&a)
        .arg(&u));
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
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&input)
        .args(["-ar", "16000", "-c:a", "pcm_s24le"])
        .arg(&sixteen));
    for (src, downmix) in [
        (&input, "stereo"),
        (&input, "average"),
        (&sixteen, "stereo"),
    ] {
        let flac = scratch(&format!("out-{downmix}.flac"));
        run(Command::new(&bin)
            .args(["transcode", "--codec", "flac", "--downmix", downmix])
            .arg(src)
            .arg(&flac));
        run(Command::new("flac").args(["-t", "-s"]).arg(&flac));
        let theirs = scratch(&format!("theirs-{downmix}.wav"));
        run(Command::new("flac")
            .args(["-d", "-f", "-s", "-o"])
            .arg(&theirs)
            .arg(&flac));
        let mine = scratch(&format!("mine-{downmix}.wav"));
        run(Command::new(&bin).arg("decode").arg(&flac).arg(&mine));
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
        run(ff.args(["-f", "s16le"]).arg(&want));
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
    run(Command::new(&bin).arg("transcode").arg(&input).arg(&alaw));
    let mine = scratch("decode-alaw-pcm.wav");
    run(Command::new(&bin).arg("decode").arg(&alaw).arg(&mine));
    let theirs = scratch("decode-alaw-ff.raw");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&alaw)
        .args(["-f", "s16le"])
        .arg(&theirs));
    assert_eq!(
        std::fs::read(&mine).unwrap()[44..],
        std::fs::read(&theirs).unwrap()[..],
        "decode of A-law equals ffmpeg's"
    );
}
