//! `batch-handler`: the Lambda (`bootstrap`) when `AWS_LAMBDA_RUNTIME_API` is set, otherwise a CLI
//! that runs the very same code on a local file (`transcode`) or one event (`invoke`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use batch_handler::encode::Spooled;
use batch_handler::file::{self, FileError, Layout};
use batch_handler::transcode::TranscodeError;
use batch_handler::{Codec, Downmix, Handler, Options, Settings, client};
use clap::{Parser, Subcommand};

/// Exit code of `transcode` when the input is already G.711 (nothing written).
const EXIT_ALREADY_CONVERTED: u8 = 3;

#[derive(Parser)]
#[command(version, about = "Transcode call recordings to G.711 for S3 Batch Operations", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a local WAV with exactly the code the Lambda runs.
    Transcode {
        /// Input WAV (PCM 8/16/24/32-bit or float, mono or stereo, 8 to 96 kHz; G.711 output
        /// is resampled to 8 kHz).
        input: PathBuf,
        /// Output file; written to a temporary name and renamed when complete.
        output: PathBuf,
        /// average | sum | left | right | stereo.
        #[arg(long, default_value = "average")]
        downmix: Downmix,
        /// alaw | mulaw | flac (lossless; any input rate kept) | opus (Ogg Opus).
        #[arg(long, default_value = "alaw")]
        codec: String,
        /// Opus bit rate per channel, bits per second (8000 to 128000).
        #[arg(long, default_value_t = batch_handler::encode::DEFAULT_OPUS_BITRATE)]
        opus_bitrate: u32,
        /// Flush the output to disk before renaming it into place (what a script that deletes
        /// the input afterwards wants; ffmpeg and sox do not sync).
        #[arg(long)]
        sync: bool,
    },
    /// Decode one of our outputs (G.711 WAV, FLAC or Ogg Opus) back to 16-bit PCM WAV, for players and
    /// tools that need PCM; streaming, any length.
    Decode {
        /// The converted recording.
        input: PathBuf,
        /// PCM16 WAV; written to a temporary name and renamed when complete.
        output: PathBuf,
    },
    /// Process one S3 Batch Operations invocation event against S3 and print the response JSON.
    ///
    /// Settings come from the same environment variables as the Lambda (see README).
    Invoke {
        /// Event JSON file (`-` for standard input).
        #[arg(long)]
        event: PathBuf,
        /// S3 endpoint, e.g. http://127.0.0.1:5000 (path-style is then used).
        #[arg(long)]
        endpoint_url: Option<String>,
        /// Print, per task, the decoded bucket, key, version and effective settings; touch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Give up on unfinished tasks after this many seconds (TemporaryFailure), like a Lambda timeout.
        #[arg(long)]
        timeout_seconds: Option<f64>,
    },
    /// Print a key URL-encoded as a manifest or event carries it (every byte outside A-Z a-z 0-9 - . _ ~ /).
    EncodeKey {
        /// The object key.
        key: String,
    },
    /// Print the key an event's URL-encoded `s3Key` stands for (form decoding: '+' is a space).
    DecodeKey {
        /// The key as found in an event, manifest or report.
        key: String,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .with_current_span(false)
            .with_target(false)
            .without_time()
            .init();
    } else {
        builder.with_target(false).init();
    }
}

fn main() -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        init_logging(true);
        return match run_lambda() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "runtime stopped");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Transcode {
            input,
            output,
            downmix,
            codec,
            opus_bitrate,
            sync,
        } => {
            let spooled = match codec.to_ascii_lowercase().as_str() {
                "flac" => Ok(Some(Spooled::Flac)),
                "opus" if (8_000..=128_000).contains(&opus_bitrate) => Ok(Some(Spooled::Opus {
                    bitrate: opus_bitrate,
                })),
                "opus" => Err(anyhow::anyhow!(
                    "--opus-bitrate {opus_bitrate}: from 8000 to 128000 bits per second per channel (below 8000 libopus folds stereo into mono)"
                )),
                _ => codec
                    .parse::<Codec>()
                    .map(|_| None)
                    .map_err(|e| anyhow::anyhow!("--codec: {e}; or flac, opus")),
            };
            match spooled {
                Ok(Some(kind)) => spooled_file(&input, &output, downmix, kind, sync),
                Ok(None) => {
                    let codec = codec.parse::<Codec>().expect("parsed above");
                    transcode_file(&input, &output, Options { codec, downmix }, sync)
                }
                Err(e) => Err(e),
            }
        }
        Command::Decode { input, output } => decode_file(&input, &output),
        Command::Invoke {
            event,
            endpoint_url,
            dry_run,
            timeout_seconds,
        } => {
            init_logging(false);
            invoke(&event, endpoint_url.as_deref(), dry_run, timeout_seconds)
        }
        Command::EncodeKey { key } => {
            println!("{}", batch_contract::key::encode_key(&key));
            Ok(ExitCode::SUCCESS)
        }
        Command::DecodeKey { key } => batch_contract::key::decode_key(&key)
            .map(|k| {
                println!("{k}");
                ExitCode::SUCCESS
            })
            .map_err(|e| anyhow::anyhow!("{e}")),
    };
    report_peak_rss();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// With `REPORT_PEAK_RSS=1`, prints this process's peak resident memory (`VmHWM`) to stderr.
///
/// Measured from inside because a parent's `wait4` figure includes the parent's own memory
/// carried over by `posix_spawn`/exec, which says nothing about this program.
fn report_peak_rss() {
    if std::env::var_os("REPORT_PEAK_RSS").is_none() {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
        let kib = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim();
        eprintln!("peak_rss_kib={kib}");
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run_lambda() -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let settings = Settings::from_env().context("reading the function's settings")?;
        tracing::info!(settings = %settings.describe(), "starting");
        let (margin, timeout) = (settings.deadline_margin, settings.function_timeout);
        let handler = Handler::new(client::s3_client(None).await, settings);
        let service = lambda_runtime::service_fn(
            move |ev: lambda_runtime::LambdaEvent<serde_json::Value>| {
                let handler = handler.clone();
                async move {
                    let deadline = lambda_deadline(ev.context.deadline, timeout, margin);
                    tracing::debug!(
                        deadline_ms = ev.context.deadline,
                        work_ms = deadline
                            .saturating_duration_since(tokio::time::Instant::now())
                            .as_millis() as u64,
                        "invocation"
                    );
                    let response = handler.handle(&ev.payload, Some(deadline)).await;
                    Ok::<_, lambda_runtime::Error>(response)
                }
            },
        );
        lambda_runtime::run(service)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    })
}

/// The instant to stop at: the invocation's deadline (ms since the epoch) minus the margin,
/// the margin capped at a fifth of the time left so that a short function timeout (the Lambda
/// default is 3 s) still leaves time to work instead of failing every task at once. A value
/// before 2001 is taken as milliseconds from now: `cargo lambda watch` sends a time, not an
/// instant (600 s, whatever its `--timeout`). A configured function timeout (from
/// `FUNCTION_TIMEOUT_SECONDS`) shortens the time left when it is the shorter.
fn lambda_deadline(
    deadline_ms: u64,
    function_timeout: Option<Duration>,
    margin: Duration,
) -> tokio::time::Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let total = if deadline_ms < 1_000_000_000_000 {
        Duration::from_millis(deadline_ms)
    } else {
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    };
    let total = function_timeout.map_or(total, |t| t.min(total));
    tokio::time::Instant::now() + total.saturating_sub(margin.min(total / 5))
}

fn invoke(
    event: &Path,
    endpoint_url: Option<&str>,
    dry_run: bool,
    timeout: Option<f64>,
) -> anyhow::Result<ExitCode> {
    let text = if event == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the event from standard input")?;
        s
    } else {
        std::fs::read_to_string(event).with_context(|| format!("reading {}", event.display()))?
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", event.display()))?;
    let settings = Settings::from_env().context("reading settings from the environment")?;
    if dry_run {
        // No client, no credentials, no network: only what the event and settings say.
        let output = batch_handler::handler::dry_run(&settings, &value);
        println!("{}", serde_json::to_string_pretty(&output)?);
        return Ok(ExitCode::SUCCESS);
    }
    let output = runtime()?.block_on(async {
        let handler = Handler::new(client::s3_client(endpoint_url).await, settings);
        let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
        serde_json::to_value(handler.handle(&value, deadline).await).expect("response serialises")
    });
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}

/// The input, its length, and the output's temporary name (`OUT.partial`, renamed into place
/// when complete) with that file created: what every file command starts with.
fn open_pair(
    input: &Path,
    output: &Path,
) -> anyhow::Result<(std::fs::File, u64, PathBuf, std::fs::File)> {
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let len = file.metadata()?.len();
    let tmp = output.with_extension("partial");
    let writer =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Ok((file, len, tmp, writer))
}

/// `decode`: the input expanded to PCM16 WAV in a temporary file, renamed into place.
fn decode_file(input: &Path, output: &Path) -> anyhow::Result<ExitCode> {
    let (file, len, tmp, writer) = open_pair(input, output)?;
    match batch_handler::decode::decode(
        std::io::BufReader::new(file),
        len,
        std::io::BufWriter::new(writer),
    ) {
        Ok(d) => {
            std::fs::rename(&tmp, output)
                .with_context(|| format!("renaming {} to {}", tmp.display(), output.display()))?;
            eprintln!(
                "{} -> {}: {} {} Hz {}ch -> pcm_s16le, {} frames",
                input.display(),
                output.display(),
                d.from,
                d.sample_rate,
                d.channels,
                d.frames
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            bail!("{}: {e}", input.display())
        }
    }
}

/// `transcode --codec flac|opus`, and G.711 from a rate other than 8 kHz: the input streamed
/// through the encoder (and the resampler) into a temporary file, renamed into place when
/// complete.
fn spooled_file(
    input: &Path,
    output: &Path,
    downmix: Downmix,
    kind: Spooled,
    sync: bool,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let (file, len, tmp, writer) = open_pair(input, output)?;
    let result = batch_handler::encode::encode_wav(
        std::io::BufReader::new(file),
        len,
        std::io::BufWriter::new(writer),
        downmix,
        kind,
    );
    let (done, writer) = match result {
        Ok(ok) => ok,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            if let batch_handler::encode::EncodeError::Transcode(TranscodeError::AlreadyEncoded {
                ..
            }) = e
            {
                eprintln!("{}: {e}; nothing written", input.display());
                return Ok(ExitCode::from(EXIT_ALREADY_CONVERTED));
            }
            bail!("{}: {e}", input.display());
        }
    };
    let file = writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {}", tmp.display(), e.error()))?;
    if sync {
        file.sync_data()
            .with_context(|| format!("syncing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, output)
        .with_context(|| format!("renaming {} to {}", tmp.display(), output.display()))?;
    eprintln!(
        "{} -> {}: {} -> {} {} Hz {}ch, {} frames, {} -> {} bytes in {:.3} s",
        input.display(),
        output.display(),
        done.input.describe(),
        kind.name(),
        done.rate,
        done.channels,
        done.frames,
        len,
        done.len,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn transcode_file(
    input: &Path,
    output: &Path,
    options: Options,
    sync: bool,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let (file, len, tmp, writer) = open_pair(input, output)?;
    let result: anyhow::Result<_> = (|| {
        let plan = match file::convert_file(&file, &writer, options, Layout::default()) {
            Err(FileError::Io(e)) => {
                return Err(e).with_context(|| {
                    format!("converting {} into {}", input.display(), tmp.display())
                });
            }
            Err(FileError::Transcode(e)) => return Err(e.into()),
            Ok(plan) => plan,
        };
        if sync {
            writer
                .sync_data()
                .with_context(|| format!("syncing {}", tmp.display()))?;
        }
        Ok(plan)
    })();
    let plan = match result {
        Ok(plan) => plan,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            if let Some(TranscodeError::NeedsResampling { .. }) = e.downcast_ref::<TranscodeError>()
            {
                return spooled_file(
                    input,
                    output,
                    options.downmix,
                    Spooled::G711(options.codec),
                    sync,
                );
            }
            if let Some(TranscodeError::AlreadyEncoded { .. }) = e.downcast_ref::<TranscodeError>()
            {
                eprintln!("{}: {e}; nothing written", input.display());
                return Ok(ExitCode::from(EXIT_ALREADY_CONVERTED));
            }
            bail!("{}: {e}", input.display());
        }
    };
    std::fs::rename(&tmp, output)
        .with_context(|| format!("renaming {} to {}", tmp.display(), output.display()))?;
    let mut note = String::new();
    if plan.input.partial_frame_bytes() > 0 {
        note += &format!(
            "; dropped a {}-byte partial frame",
            plan.input.partial_frame_bytes()
        );
    }
    if plan.input.missing_bytes() > 0 {
        note += &format!(
            "; header promised {} more bytes than the file holds",
            plan.input.missing_bytes()
        );
    }
    eprintln!(
        "{}: {:.1} s of {} ({} bytes) -> {} {} ({} bytes) in {:.3} s{note}",
        output.display(),
        plan.seconds(),
        plan.input.format.describe(),
        len,
        options.codec.name(),
        options.downmix.name(),
        plan.output_len,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_function_timeout_keeps_four_fifths_of_its_time() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let left_with = |deadline_ms: u64, timeout: Option<u64>, margin: u64| {
            lambda_deadline(
                deadline_ms,
                timeout.map(Duration::from_secs),
                Duration::from_secs(margin),
            )
            .saturating_duration_since(tokio::time::Instant::now())
            .as_millis()
        };
        let left = |deadline_ms: u64, margin: u64| left_with(deadline_ms, None, margin);
        // 3 s left, 10 s margin: stop after about 2.4 s, not at once.
        assert!((2_200..=2_400).contains(&left(now_ms + 3_000, 10)));
        // 15 min left: the whole 10 s margin applies.
        assert!((889_000..=890_000).contains(&left(now_ms + 900_000, 10)));
        assert_eq!(left(now_ms.saturating_sub(5_000), 10), 0);
        // `cargo lambda watch` sends the timeout (600000 ms), not an instant.
        assert!((589_000..=590_000).contains(&left(600_000, 10)));
        // ... whatever its --timeout: a configured function timeout of 3 s wins.
        assert!((2_200..=2_400).contains(&left_with(600_000, Some(3), 10)));
        // A configured timeout longer than the runtime's deadline changes nothing.
        assert!((2_200..=2_400).contains(&left_with(now_ms + 3_000, Some(900), 10)));
    }
}
