//! `estimate`: the workload and price flags, each defaulting to the library's value.

use manifest_builder::estimate::{Prices, Workload};

/// Prices, all overridable.
#[derive(Debug, Clone, clap::Args)]
pub struct PriceArgs {
    /// S3 Standard, $ per GB-month.
    #[arg(long, default_value_t = Prices::default().standard_gb_month)]
    pub standard_gb_month: f64,
    /// S3 Glacier Instant Retrieval, $ per GB-month.
    #[arg(long, default_value_t = Prices::default().glacier_ir_gb_month)]
    pub glacier_ir_gb_month: f64,
    /// GLACIER_IR bills every object as at least this many KiB.
    #[arg(long, default_value_t = Prices::default().glacier_ir_min_object_kib)]
    pub glacier_ir_min_object_kib: f64,
    /// GET from S3 Standard, $ per 1000 requests.
    #[arg(long, default_value_t = Prices::default().get_per_1000)]
    pub get_per_1000: f64,
    /// PUT into GLACIER_IR, $ per 1000 requests.
    #[arg(long, default_value_t = Prices::default().put_glacier_ir_per_1000)]
    pub put_glacier_ir_per_1000: f64,
    /// S3 Batch Operations, $ per job.
    #[arg(long, default_value_t = Prices::default().batch_per_job)]
    pub batch_per_job: f64,
    /// S3 Batch Operations, $ per million tasks.
    #[arg(long, default_value_t = Prices::default().batch_per_million_tasks)]
    pub batch_per_million_tasks: f64,
    /// Lambda, $ per GB-second (x86).
    #[arg(long, default_value_t = Prices::default().lambda_gb_second)]
    pub lambda_gb_second: f64,
    /// Lambda, $ per million requests.
    #[arg(long, default_value_t = Prices::default().lambda_per_million)]
    pub lambda_per_million: f64,
}

impl From<&PriceArgs> for Prices {
    fn from(a: &PriceArgs) -> Self {
        Prices {
            standard_gb_month: a.standard_gb_month,
            glacier_ir_gb_month: a.glacier_ir_gb_month,
            glacier_ir_min_object_kib: a.glacier_ir_min_object_kib,
            get_per_1000: a.get_per_1000,
            put_glacier_ir_per_1000: a.put_glacier_ir_per_1000,
            batch_per_job: a.batch_per_job,
            batch_per_million_tasks: a.batch_per_million_tasks,
            lambda_gb_second: a.lambda_gb_second,
            lambda_per_million: a.lambda_per_million,
        }
    }
}

/// The workload and how it is processed.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkloadArgs {
    /// New recorded minutes per month.
    #[arg(long, default_value_t = Workload::default().minutes_per_month)]
    pub minutes_per_month: f64,
    /// Size of a recorded minute in MB (Connect PCM 8 kHz stereo 16-bit: 1.92).
    #[arg(long, default_value_t = Workload::default().mb_per_minute)]
    pub mb_per_minute: f64,
    /// The codec the job will use: its measured size ratio and processing rate become the
    /// defaults of --codec-ratio and --lambda-seconds-per-minute (alaw, alaw-stereo, flac,
    /// flac-stereo, opus, opus-stereo).
    #[arg(long, value_parser = codec_name)]
    pub codec: Option<String>,
    /// Converted size / original size (default: the codec's, A-law mono 0.25).
    #[arg(long)]
    pub codec_ratio: Option<f64>,
    /// Days a recording stays as recorded before it is converted.
    #[arg(long, default_value_t = Workload::default().delay_days)]
    pub delay_days: f64,
    /// Average recording length in minutes (objects per minute of audio; the 128 KiB minimum).
    #[arg(long, default_value_t = Workload::default().minutes_per_recording)]
    pub minutes_per_recording: f64,
    /// Days the original stays as a noncurrent version after an in-place conversion (your lifecycle rule).
    #[arg(long, default_value_t = Workload::default().noncurrent_days)]
    pub noncurrent_days: f64,
    /// Existing archive to convert in the first month, in GB (or --from-summary).
    #[arg(long, default_value_t = Workload::default().backlog_gb)]
    pub backlog_gb: f64,
    /// Batch Operations jobs per month (weekly: 4.35).
    #[arg(long, default_value_t = Workload::default().jobs_per_month)]
    pub jobs_per_month: f64,
    /// Lambda memory in MB.
    #[arg(long, default_value_t = Workload::default().lambda_memory_mb)]
    pub lambda_memory_mb: f64,
    /// Lambda seconds per minute of audio (default: the codec's; measure yours with `report`).
    #[arg(long)]
    pub lambda_seconds_per_minute: Option<f64>,
    /// Use this processing price per 1000 minutes instead of computing it from its parts.
    #[arg(long)]
    pub processing_cost_per_1000_minutes: Option<f64>,
}

fn codec_name(s: &str) -> Result<String, String> {
    manifest_builder::estimate::codec_profile(s)
        .map(|c| c.name.to_string())
        .ok_or_else(|| {
            format!(
                "unknown codec {s:?}: one of {}",
                manifest_builder::estimate::CODECS
                    .iter()
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

impl From<&WorkloadArgs> for Workload {
    fn from(a: &WorkloadArgs) -> Self {
        let profile =
            manifest_builder::estimate::codec_profile(a.codec.as_deref().unwrap_or("alaw"))
                .expect("checked by the parser");
        Workload {
            minutes_per_month: a.minutes_per_month,
            mb_per_minute: a.mb_per_minute,
            codec_ratio: a.codec_ratio.unwrap_or(profile.ratio),
            delay_days: a.delay_days,
            minutes_per_recording: a.minutes_per_recording,
            noncurrent_days: a.noncurrent_days,
            backlog_gb: a.backlog_gb,
            jobs_per_month: a.jobs_per_month,
            lambda_memory_mb: a.lambda_memory_mb,
            lambda_seconds_per_minute: a
                .lambda_seconds_per_minute
                .unwrap_or(profile.lambda_seconds_per_minute),
            processing_cost_per_1000_minutes: a.processing_cost_per_1000_minutes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        w: WorkloadArgs,
    }

    fn workload(args: &[&str]) -> Workload {
        let mut all = vec!["estimate"];
        all.extend_from_slice(args);
        Workload::from(&Wrap::try_parse_from(all).unwrap().w)
    }

    #[test]
    fn a_codec_sets_the_ratio_and_rate_unless_they_are_given() {
        assert_eq!(workload(&[]), Workload::default());
        let flac = workload(&["--codec", "flac-stereo"]);
        let p = manifest_builder::estimate::codec_profile("flac-stereo").unwrap();
        assert_eq!(
            (flac.codec_ratio, flac.lambda_seconds_per_minute),
            (p.ratio, p.lambda_seconds_per_minute)
        );
        let mine = workload(&["--codec", "FLAC", "--codec-ratio", "0.6"]);
        assert_eq!(mine.codec_ratio, 0.6);
        assert!(Wrap::try_parse_from(["estimate", "--codec", "vorbis"]).is_err());
    }
}
