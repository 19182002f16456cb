//! `manifest-builder`: the operator's CLI ([`cli`]), or the scheduled manifest Lambda when
//! `AWS_LAMBDA_RUNTIME_API` is set.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        // The scheduled manifest function: configured by its environment, logs as JSON.
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .without_time()
            .init();
        return match runtime.block_on(manifest_builder::schedule::lambda()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let cli = cli::Cli::parse();
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", manifest_builder::aws::explain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
