//! What shrinking costs and saves, month by month: storage before and after, and the processing
//! that gets there, computed from its parts. Every price is an input with a documented default
//! (us-east-1 list prices); nothing is a hidden constant.

use serde::Serialize;

/// Days in an average month: storage is billed per GB-month.
pub const DAYS_PER_MONTH: f64 = 30.4375;

/// Prices, every one an input (the CLI has a flag for each).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prices {
    /// S3 Standard, $ per GB-month.
    pub standard_gb_month: f64,
    /// S3 Glacier Instant Retrieval, $ per GB-month.
    pub glacier_ir_gb_month: f64,
    /// GLACIER_IR bills every object as at least this many KiB.
    pub glacier_ir_min_object_kib: f64,
    /// GET from S3 Standard, $ per 1000 requests.
    pub get_per_1000: f64,
    /// PUT into GLACIER_IR, $ per 1000 requests.
    pub put_glacier_ir_per_1000: f64,
    /// S3 Batch Operations, $ per job.
    pub batch_per_job: f64,
    /// S3 Batch Operations, $ per million tasks.
    pub batch_per_million_tasks: f64,
    /// Lambda, $ per GB-second (x86).
    pub lambda_gb_second: f64,
    /// Lambda, $ per million requests.
    pub lambda_per_million: f64,
}

impl Default for Prices {
    /// us-east-1 list prices.
    fn default() -> Self {
        Prices {
            standard_gb_month: 0.023,
            glacier_ir_gb_month: 0.004,
            glacier_ir_min_object_kib: 128.0,
            get_per_1000: 0.0004,
            put_glacier_ir_per_1000: 0.02,
            batch_per_job: 0.25,
            batch_per_million_tasks: 1.0,
            lambda_gb_second: 0.0000166667,
            lambda_per_million: 0.20,
        }
    }
}

/// What a codec choice costs and keeps: the named defaults of `estimate --codec`, measured by
/// `batch-handler transcode` (release) on one x86_64 core. G.711 sizes are exact; FLAC's depend
/// on the audio: measured on the synthetic two-talker call (`sample-recording`) with a -44 dBFS
/// noise floor and passed through µ-law, as PSTN audio arrives (clean synthetic speech gives
/// 0.234 and 0.305: real lines compress less). Override with `--codec-ratio`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CodecProfile {
    /// `--codec` name.
    pub name: &'static str,
    /// Output size / Connect PCM size.
    pub ratio: f64,
    /// Lambda seconds per audio minute at 512 MB: the transfer-bound 0.05 s, plus the encoder's
    /// CPU time scaled to the 0.29 vCPU Lambda gives 512 MB.
    pub lambda_seconds_per_minute: f64,
    /// What the output keeps.
    pub keeps: &'static str,
}

/// The codec choices, A-law mono (the default) first.
pub const CODECS: [CodecProfile; 6] = [
    CodecProfile {
        name: "alaw",
        ratio: 0.25,
        lambda_seconds_per_minute: 0.05,
        keeps: "one lossy 8 kHz channel (the speakers mixed)",
    },
    CodecProfile {
        name: "alaw-stereo",
        ratio: 0.5,
        lambda_seconds_per_minute: 0.06,
        keeps: "both speakers, lossy (G.711), for per-speaker analytics",
    },
    CodecProfile {
        name: "flac",
        ratio: 0.276,
        lambda_seconds_per_minute: 0.155,
        keeps: "the mix, lossless",
    },
    CodecProfile {
        name: "flac-stereo",
        ratio: 0.509,
        lambda_seconds_per_minute: 0.40,
        keeps: "both speakers, lossless",
    },
    // Opus at 16 kb/s per channel on the speech call: 6.4 and 11.4 MB per hour of the PCM's
    // 115.2; 16.2 and 20.8 CPU s per audio hour, over 512/1769 of a vCPU, plus the transfer.
    CodecProfile {
        name: "opus",
        ratio: 0.056,
        lambda_seconds_per_minute: 0.98,
        keeps: "the mix, lossy (Opus 16 kb/s, speech quality near A-law's)",
    },
    CodecProfile {
        name: "opus-stereo",
        ratio: 0.099,
        lambda_seconds_per_minute: 1.25,
        keeps: "both speakers, lossy (Opus 2 x 16 kb/s), for per-speaker analytics",
    },
];

/// The profile of `--codec NAME`.
pub fn codec_profile(name: &str) -> Option<&'static CodecProfile> {
    CODECS.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// The workload and how it is processed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// New recorded minutes per month.
    pub minutes_per_month: f64,
    /// Size of a recorded minute in MB (Connect PCM 8 kHz stereo 16-bit: 1.92).
    pub mb_per_minute: f64,
    /// Converted size / original size (A-law mono 0.25; --downmix stereo 0.5).
    pub codec_ratio: f64,
    /// Days a recording stays as recorded before it is converted.
    pub delay_days: f64,
    /// Average recording length in minutes (objects per minute of audio; the 128 KiB minimum).
    pub minutes_per_recording: f64,
    /// Days the original stays as a noncurrent version after an in-place conversion (your lifecycle rule).
    pub noncurrent_days: f64,
    /// Existing archive to convert in the first month, in GB (or --from-summary).
    pub backlog_gb: f64,
    /// Batch Operations jobs per month (weekly: 4.35).
    pub jobs_per_month: f64,
    /// Lambda memory in MB.
    pub lambda_memory_mb: f64,
    /// Lambda seconds per minute of audio (transfer-bound; measure yours with `report`).
    pub lambda_seconds_per_minute: f64,
    /// Use this processing price per 1000 minutes instead of computing it from its parts.
    pub processing_cost_per_1000_minutes: Option<f64>,
}

impl Default for Workload {
    /// The Connect defaults: PCM 8 kHz stereo, A-law mono, a week's delay, weekly jobs.
    fn default() -> Self {
        Workload {
            minutes_per_month: 0.0,
            mb_per_minute: 1.92,
            codec_ratio: 0.25,
            delay_days: 7.0,
            minutes_per_recording: 5.0,
            noncurrent_days: 1.0,
            backlog_gb: 0.0,
            jobs_per_month: 4.35,
            lambda_memory_mb: 512.0,
            lambda_seconds_per_minute: 0.05,
            processing_cost_per_1000_minutes: None,
        }
    }
}

/// One month of the projection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Month {
    /// 1-based.
    pub month: u32,
    /// All recordings kept as recorded, in S3 Standard.
    pub before: f64,
    /// Standard storage after: the delay window and noncurrent originals.
    pub after_standard: f64,
    /// GLACIER_IR storage of converted recordings.
    pub after_glacier_ir: f64,
    /// Processing (Batch Operations, Lambda, requests).
    pub processing: f64,
}

impl Month {
    /// Everything after.
    pub fn after(&self) -> f64 {
        self.after_standard + self.after_glacier_ir + self.processing
    }
}

/// A year's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Year {
    /// 1-based.
    pub year: u32,
    /// Storage cost without conversion.
    pub before: f64,
    /// Storage after conversion.
    pub after_storage: f64,
    /// Processing.
    pub processing: f64,
    /// `after_storage + processing`.
    pub after: f64,
    /// `before - after`.
    pub saving: f64,
}

/// The whole projection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// The codec profile the ratio and rate came from, when one was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<CodecProfile>,
    /// Inputs.
    pub workload: Workload,
    /// Prices.
    pub prices: Prices,
    /// Processing cost per 1000 minutes used.
    pub processing_per_1000_minutes: f64,
    /// Month by month.
    pub months: Vec<Month>,
    /// Year by year.
    pub years: Vec<Year>,
    /// Sum before.
    pub total_before: f64,
    /// Sum after.
    pub total_after: f64,
}

/// Processing cost of 1000 minutes of audio, from its parts.
pub fn processing_per_1000_minutes(w: &Workload, p: &Prices) -> f64 {
    if let Some(fixed) = w.processing_cost_per_1000_minutes {
        return fixed;
    }
    let objects = 1000.0 / w.minutes_per_recording.max(1e-9);
    let tasks = objects * p.batch_per_million_tasks / 1e6;
    let requests = objects * (p.get_per_1000 + p.put_glacier_ir_per_1000) / 1000.0;
    let lambda =
        1000.0 * w.lambda_seconds_per_minute * (w.lambda_memory_mb / 1024.0) * p.lambda_gb_second
            + objects * p.lambda_per_million / 1e6;
    tasks + requests + lambda
}

/// GB-month price of converted audio, with GLACIER_IR's minimum billable object size.
fn glacier_ir_gb(w: &Workload, p: &Prices, original_gb: f64) -> f64 {
    let object_mb = w.minutes_per_recording * w.mb_per_minute * w.codec_ratio;
    let billed_mb = object_mb.max(p.glacier_ir_min_object_kib * 1024.0 / 1e6);
    let factor = if object_mb > 0.0 {
        billed_mb / object_mb
    } else {
        1.0
    };
    original_gb * w.codec_ratio * factor
}

/// Projects `months` months.
pub fn project(w: &Workload, p: &Prices, months: u32) -> Estimate {
    let monthly_gb = w.minutes_per_month * w.mb_per_minute / 1000.0;
    let per_1000 = processing_per_1000_minutes(w, p);
    let delay = (w.delay_days / DAYS_PER_MONTH).min(1.0);
    let noncurrent = (w.noncurrent_days / DAYS_PER_MONTH).min(1.0);
    let backlog_minutes = w.backlog_gb * 1000.0 / w.mb_per_minute;
    let mut rows = Vec::new();
    for m in 1..=months {
        // End-of-month stock: m months of recordings plus the backlog.
        let stock = monthly_gb * f64::from(m) + w.backlog_gb;
        let fresh = monthly_gb * delay; // not yet converted
        let converted = stock - fresh;
        let mut minutes = w.minutes_per_month;
        let mut noncurrent_gb = monthly_gb * noncurrent;
        if m == 1 {
            minutes += backlog_minutes;
            noncurrent_gb += w.backlog_gb * noncurrent;
        }
        rows.push(Month {
            month: m,
            before: stock * p.standard_gb_month,
            after_standard: (fresh + noncurrent_gb) * p.standard_gb_month,
            after_glacier_ir: glacier_ir_gb(w, p, converted) * p.glacier_ir_gb_month,
            processing: minutes / 1000.0 * per_1000
                + w.jobs_per_month
                    * p.batch_per_job
                    * f64::from(w.processing_cost_per_1000_minutes.is_none() as u8),
        });
    }
    let years = rows
        .chunks(12)
        .enumerate()
        .map(|(i, ms)| {
            let before: f64 = ms.iter().map(|m| m.before).sum();
            let after_storage: f64 = ms
                .iter()
                .map(|m| m.after_standard + m.after_glacier_ir)
                .sum();
            let processing: f64 = ms.iter().map(|m| m.processing).sum();
            Year {
                year: i as u32 + 1,
                before,
                after_storage,
                processing,
                after: after_storage + processing,
                saving: before - after_storage - processing,
            }
        })
        .collect::<Vec<_>>();
    Estimate {
        codec: None,
        workload: w.clone(),
        prices: p.clone(),
        processing_per_1000_minutes: per_1000,
        total_before: rows.iter().map(|m| m.before).sum(),
        total_after: rows.iter().map(Month::after).sum(),
        months: rows,
        years,
    }
}

/// Whole dollars with thousands separators, as the table prints them: `$1,235` (`-$12`).
pub fn money(x: f64) -> String {
    let dollars = x.round() as i64;
    let sign = if dollars < 0 { "-" } else { "" };
    let whole = dollars.abs().to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}${grouped}")
}

/// The year-by-year table.
pub fn table(e: &Estimate) -> String {
    let mut out = format!(
        "{:<6} {:>14} {:>14} {:>14} {:>14} {:>14}\n",
        "year", "before", "after storage", "processing", "after", "saving"
    );
    for y in &e.years {
        out += &format!(
            "{:<6} {:>14} {:>14} {:>14} {:>14} {:>14}\n",
            y.year,
            money(y.before),
            money(y.after_storage),
            money(y.processing),
            money(y.after),
            money(y.saving)
        );
    }
    let (sb, sa) = (e.total_before, e.total_after);
    let storage: f64 = e.years.iter().map(|y| y.after_storage).sum();
    let processing: f64 = e.years.iter().map(|y| y.processing).sum();
    out += &format!(
        "{:<6} {:>14} {:>14} {:>14} {:>14} {:>14}\n",
        "total",
        money(sb),
        money(storage),
        money(processing),
        money(sa),
        money(sb - sa)
    );
    out += &format!(
        "processing: ${:.4} per 1000 minutes of audio\n",
        e.processing_per_1000_minutes
    );
    if let Some(c) = &e.codec {
        out += &format!(
            "codec: {} keeps {}; {:.1} % of the PCM's size, {} s per audio minute at 512 MB\n",
            c.name,
            c.keeps,
            c.ratio * 100.0,
            c.lambda_seconds_per_minute
        );
    }
    out
}

/// Monthly rows as CSV.
pub fn csv(e: &Estimate) -> String {
    let mut out = String::from("month,before,after_standard,after_glacier_ir,processing,after\n");
    for m in &e.months {
        out += &format!(
            "{},{:.2},{:.2},{:.2},{:.2},{:.2}\n",
            m.month,
            m.before,
            m.after_standard,
            m.after_glacier_ir,
            m.processing,
            m.after()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> Prices {
        Prices::default()
    }

    fn reference_design() -> Workload {
        Workload {
            minutes_per_month: 3_000_000.0,
            mb_per_minute: 2.0,
            codec_ratio: 0.25,
            delay_days: 7.0,
            minutes_per_recording: 5.0,
            noncurrent_days: 0.0,
            backlog_gb: 0.0,
            jobs_per_month: 4.35,
            lambda_memory_mb: 512.0,
            lambda_seconds_per_minute: 0.05,
            processing_cost_per_1000_minutes: Some(0.11),
        }
    }

    #[test]
    fn reference_design_case_is_close_to_its_table_2() {
        let e = project(&reference_design(), &prices(), 72);
        // 6 TB a month at $0.023, accumulating: 6000 * 0.023 * (1 + 2 + ... + 72).
        assert!(
            (e.total_before - 362_664.0).abs() < 0.01,
            "{}",
            e.total_before
        );
        // Processing: 3M minutes * $0.11 / 1000 * 72 months.
        let processing: f64 = e.months.iter().map(|m| m.processing).sum();
        assert!((processing - 23_760.0).abs() < 0.01, "{processing}");
        // The reference's Table 2: $356,664 before, $41,838 after. Within 2 %.
        assert!((e.total_before / 356_664.0 - 1.0).abs() < 0.02);
        assert!(
            (e.total_after / 41_838.0 - 1.0).abs() < 0.02,
            "{}",
            e.total_after
        );
        assert_eq!(e.years.len(), 6);
        assert!(table(&e).contains("total"));
    }

    #[test]
    fn processing_is_computed_from_its_parts() {
        let mut w = reference_design();
        w.processing_cost_per_1000_minutes = None;
        let p = prices();
        // 200 recordings of 5 min per 1000 minutes: tasks $0.0002, GET+PUT $0.00408, Lambda 50 s * 0.5 GB.
        let expect = 200.0 * 1.0 / 1e6
            + 200.0 * (0.0004 + 0.02) / 1000.0
            + 50.0 * 0.5 * 0.0000166667
            + 200.0 * 0.2 / 1e6;
        assert!((processing_per_1000_minutes(&w, &p) - expect).abs() < 1e-12);
        // Short recordings pay GLACIER_IR's 128 KiB minimum: 0.1 min * 1.92 MB * 0.25 = 48 KB -> billed 131 KB.
        w.minutes_per_recording = 0.1;
        w.mb_per_minute = 1.92;
        assert!((glacier_ir_gb(&w, &p, 1.0) - 0.131072 / 0.048 * 0.25).abs() < 1e-9);
    }

    #[test]
    fn a_backlog_is_converted_in_the_first_month() {
        let w = Workload {
            minutes_per_month: 0.0,
            backlog_gb: 1000.0,
            noncurrent_days: 0.0,
            processing_cost_per_1000_minutes: Some(0.11),
            ..reference_design()
        };
        let e = project(&w, &prices(), 12);
        assert!((e.months[0].before - 23.0).abs() < 1e-9);
        assert!(
            (e.months[0].after_glacier_ir - 1.0).abs() < 1e-9,
            "250 GB at $0.004"
        );
        assert!((e.months[0].processing - 500_000.0 / 1000.0 * 0.11).abs() < 1e-9);
        assert_eq!(e.months[1].processing, 0.0);
        assert!(csv(&e).starts_with("month,before"));
    }
}
