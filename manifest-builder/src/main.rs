//! `manifest-builder`: the operator's CLI. Each subcommand is a thin call into the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use manifest_builder::aws::AwsOptions;
use manifest_builder::select_cmd::{self, ManifestArgs};

#[derive(Parser)]
#[command(
    version,
    about = "Select Amazon Connect call recordings and run the S3 Batch Operations jobs that shrink them",
    long_about = "Select Amazon Connect call recordings and run the S3 Batch Operations jobs that shrink them.\n\n\
    Typical use: `manifest-builder manifest --bucket amazon-connect-0123 --prefix connect/acme/CallRecordings/ \
    --older-than 7d --output s3://ops-bucket/manifests/week.csv` lists only the day folders of the window, \
    keeps .wav objects of 512 KiB or more outside the archive classes, and writes a Batch Operations CSV \
    manifest (strictly URL-encoded, version ids on versioned buckets) with a summary beside it."
)]
struct Cli {
    #[command(flatten)]
    aws: AwsOptions,
    /// Machine-readable output (JSON on stdout).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a Batch Operations CSV manifest of the recordings that are due.
    Manifest(Box<ManifestArgs>),
    /// Write a synthetic Amazon Connect recording (PCM s16le 8 kHz stereo, two talkers).
    SampleRecording {
        /// Output WAV.
        output: PathBuf,
        /// Length in minutes.
        #[arg(long, default_value_t = 5.0)]
        minutes: f64,
        /// Seed: the same seed gives the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u32,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Manifest(args) => {
            let summary = select_cmd::run(&args, &cli.aws).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                select_cmd::print_summary(&summary, args.dry_run);
            }
        }
        Command::SampleRecording {
            output,
            minutes,
            seed,
        } => {
            let file = std::fs::File::create(&output)
                .with_context(|| format!("creating {}", output.display()))?;
            manifest_builder::synth::write_call(
                std::io::BufWriter::new(file),
                minutes * 60.0,
                seed,
            )
            .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "{}: {minutes} min synthetic Connect recording",
                output.display()
            );
        }
    }
    Ok(())
}
