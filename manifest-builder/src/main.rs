//! `manifest-builder`: the operator's CLI.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Select call recordings and run S3 Batch Operations jobs that shrink them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
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
