//! What a task does, from the function's environment, overridden per job by schema 2.0
//! `userArguments`; validated once per invocation so a typo fails loudly, not per object.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::types::StorageClass;

use crate::g711::Codec;
use crate::transcode::{Downmix, Options};

/// Where converted recordings go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Replace the original (a new version of the same key).
    InPlace,
    /// Write `prefix + key` to `bucket` (the source bucket when `None`); the original is untouched.
    Destination {
        /// Destination bucket; `None` = the task's bucket.
        bucket: Option<String>,
        /// Prepended to the source key.
        prefix: String,
    },
}

/// Which encoder a conversion goes through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    /// G.711 in WAV, streamed straight into the PUT (the law is `options.codec`).
    #[default]
    G711,
    /// FLAC, lossless, any input rate kept: encoded into a spool file, then one PUT of it.
    Flac,
    /// Opus in Ogg at `bitrate` bits per second per channel, spooled like FLAC.
    Opus {
        /// Per channel (`OPUS_BITRATE`).
        bitrate: u32,
    },
}

impl Encoding {
    /// MIME type of the written object.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::G711 => "audio/wav",
            Encoding::Flac => "audio/flac",
            Encoding::Opus { .. } => "audio/ogg",
        }
    }

    /// The spooled conversion for this encoding (G.711 only spools when it resamples).
    pub fn spooled(self, codec: Codec) -> crate::encode::Spooled {
        match self {
            Encoding::G711 => crate::encode::Spooled::G711(codec),
            Encoding::Flac => crate::encode::Spooled::Flac,
            Encoding::Opus { bitrate } => crate::encode::Spooled::Opus { bitrate },
        }
    }
}

/// Effective settings for the tasks of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Codec and downmix.
    pub options: Options,
    /// G.711 (the law in `options`), FLAC or Opus: the `codec` setting.
    pub encoding: Encoding,
    /// Opus bit rate per channel (`OPUS_BITRATE`), kept apart so that the order of `codec` and
    /// `opusBitrate` does not matter.
    pub opus_bitrate: u32,
    /// Replaces the key's extension in the output key (`OUTPUT_SUFFIX`, e.g. `.ogg`): only with
    /// a destination, since in place the key is kept.
    pub output_suffix: Option<String>,
    /// Storage class of the written object.
    pub storage_class: StorageClass,
    /// Tag that marks a converted recording (and makes later runs skip it).
    pub tag_key: String,
    /// Its value.
    pub tag_value: String,
    /// In place or to a destination.
    pub target: Target,
    /// Deployer's opt-in to overwrite on unversioned buckets (environment only: a job cannot grant it).
    pub allow_unversioned_overwrite: bool,
    /// Tasks of one invocation processed at once.
    pub concurrency: usize,
    /// Stop this long before the Lambda deadline and answer TemporaryFailure for what is unfinished.
    pub deadline_margin: Duration,
    /// The function's configured timeout, when the runtime's deadline cannot be trusted to say it
    /// (`cargo lambda watch` sends 600 s whatever its `--timeout`): the work stops at the earlier.
    pub function_timeout: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            options: Options::default(),
            encoding: Encoding::G711,
            opus_bitrate: crate::encode::DEFAULT_OPUS_BITRATE,
            output_suffix: None,
            storage_class: StorageClass::GlacierIr,
            tag_key: "converted".into(),
            tag_value: "true".into(),
            target: Target::InPlace,
            allow_unversioned_overwrite: false,
            concurrency: 4,
            deadline_margin: Duration::from_secs(10),
            function_timeout: None,
        }
    }
}

/// A setting that cannot be used, named by where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name} {name}: {reason}")]
pub struct SettingsError {
    /// "environment variable" or "user argument".
    pub source_name: &'static str,
    /// The variable or argument.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One configurable setting: its environment variable and its userArguments key.
struct Knob {
    env: &'static str,
    arg: Option<&'static str>,
}

/// The table documented in the README; `arg: None` settings are the deployer's alone.
const KNOBS: &[Knob] = &[
    Knob {
        env: "CODEC",
        arg: Some("codec"),
    },
    Knob {
        env: "DOWNMIX",
        arg: Some("downmix"),
    },
    Knob {
        env: "OPUS_BITRATE",
        arg: Some("opusBitrate"),
    },
    Knob {
        env: "OUTPUT_SUFFIX",
        arg: Some("outputSuffix"),
    },
    Knob {
        env: "STORAGE_CLASS",
        arg: Some("storageClass"),
    },
    Knob {
        env: "CONVERTED_TAG_KEY",
        arg: Some("tagKey"),
    },
    Knob {
        env: "CONVERTED_TAG_VALUE",
        arg: Some("tagValue"),
    },
    Knob {
        env: "DEST_BUCKET",
        arg: Some("destBucket"),
    },
    Knob {
        env: "DEST_PREFIX",
        arg: Some("destPrefix"),
    },
    Knob {
        env: "ALLOW_UNVERSIONED_OVERWRITE",
        arg: None,
    },
    Knob {
        env: "TASK_CONCURRENCY",
        arg: None,
    },
    Knob {
        env: "DEADLINE_MARGIN_SECONDS",
        arg: None,
    },
    Knob {
        env: "FUNCTION_TIMEOUT_SECONDS",
        arg: None,
    },
];

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("'{v}' is not a boolean (true or false)")),
    }
}

/// Bits per second per channel: `16000`, `16k` or `16kbps`, from 8 to 128 kb/s (at 6 kb/s per
/// channel libopus was measured folding two talkers into one, BENCHMARKS.md).
fn parse_bitrate(v: &str) -> Result<u32, String> {
    let lower = v.to_ascii_lowercase();
    let digits = lower.trim_end_matches("bps").trim_end_matches("b/s");
    let n = match digits.strip_suffix('k') {
        Some(k) => k.parse::<f64>().ok().map(|k| (k * 1000.0).round() as u64),
        None => digits.parse::<u64>().ok(),
    };
    n.filter(|n| (8_000..=128_000).contains(n))
        .map(|n| n as u32)
        .ok_or_else(|| {
            format!("'{v}' is not a bit rate per channel from 8000 to 128000 (or 8k to 128k): below 8 kb/s libopus folds two channels into one")
        })
}

fn parse_storage_class(v: &str) -> Result<StorageClass, String> {
    let upper = v.to_ascii_uppercase();
    let known = StorageClass::values();
    if known.contains(&upper.as_str()) {
        Ok(StorageClass::from(upper.as_str()))
    } else {
        Err(format!(
            "unknown storage class '{v}' (one of {})",
            known.join(", ")
        ))
    }
}

impl Settings {
    /// Reads the function's environment.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let mut s = Settings::default();
        for knob in KNOBS {
            if let Some(value) = lookup(knob.env) {
                s.apply(knob, &value).map_err(|reason| SettingsError {
                    source_name: "environment variable",
                    name: knob.env.to_string(),
                    reason,
                })?;
            }
        }
        s.check("environment variable")
    }

    /// These settings overridden by a job's userArguments; unknown arguments are refused.
    pub fn with_user_arguments(
        &self,
        args: &BTreeMap<String, String>,
    ) -> Result<Settings, SettingsError> {
        let mut s = self.clone();
        for (name, value) in args {
            let err = |reason: String| SettingsError {
                source_name: "user argument",
                name: name.clone(),
                reason,
            };
            let Some(knob) = KNOBS.iter().find(|k| k.arg == Some(name.as_str())) else {
                let allowed: Vec<&str> = KNOBS.iter().filter_map(|k| k.arg).collect();
                let deployer_only = KNOBS.iter().any(|k| k.env.eq_ignore_ascii_case(name));
                return Err(err(if deployer_only {
                    "can only be set in the function's environment".into()
                } else {
                    format!("unknown (accepted: {})", allowed.join(", "))
                }));
            };
            s.apply(knob, value).map_err(err)?;
        }
        s.check("user argument")
    }

    fn apply(&mut self, knob: &Knob, value: &str) -> Result<(), String> {
        let v = value.trim();
        match knob.env {
            "CODEC" if v.eq_ignore_ascii_case("flac") => self.encoding = Encoding::Flac,
            "CODEC" if v.eq_ignore_ascii_case("opus") => {
                self.encoding = Encoding::Opus {
                    bitrate: self.opus_bitrate,
                }
            }
            "CODEC" => {
                self.options.codec = v
                    .parse::<Codec>()
                    .map_err(|e| format!("{e}; or flac, opus"))?;
                self.encoding = Encoding::G711;
            }
            "OPUS_BITRATE" => {
                self.opus_bitrate = parse_bitrate(v)?;
                if let Encoding::Opus { bitrate } = &mut self.encoding {
                    *bitrate = self.opus_bitrate;
                }
            }
            "OUTPUT_SUFFIX" => {
                self.output_suffix = match v {
                    "" | "keep" => None,
                    s if s.starts_with('.')
                        && s.len() <= 16
                        && s[1..].bytes().all(|b| b.is_ascii_alphanumeric())
                        && s.len() > 1 =>
                    {
                        Some(s.to_string())
                    }
                    _ => {
                        return Err(format!(
                            "'{v}' is not a suffix: a dot and up to 15 letters or digits (.ogg), or keep"
                        ));
                    }
                }
            }
            "DOWNMIX" => self.options.downmix = v.parse::<Downmix>()?,
            "STORAGE_CLASS" => self.storage_class = parse_storage_class(v)?,
            "CONVERTED_TAG_KEY" => {
                if v.is_empty() || v.chars().count() > 128 {
                    return Err("a tag key has 1 to 128 characters".into());
                }
                self.tag_key = v.to_string();
            }
            "CONVERTED_TAG_VALUE" => {
                if v.chars().count() > 256 {
                    return Err("a tag value has at most 256 characters".into());
                }
                self.tag_value = v.to_string();
            }
            "DEST_BUCKET" | "DEST_PREFIX" => {
                let (mut bucket, mut prefix) =
                    match std::mem::replace(&mut self.target, Target::InPlace) {
                        Target::InPlace => (None, String::new()),
                        Target::Destination { bucket, prefix } => (bucket, prefix),
                    };
                if knob.env == "DEST_BUCKET" {
                    bucket = (!v.is_empty()).then(|| v.to_string());
                } else {
                    if v.starts_with('/') {
                        return Err(
                            "must not start with '/' (S3 keys have no leading slash)".into()
                        );
                    }
                    prefix = v.to_string();
                }
                if bucket.is_some() || !prefix.is_empty() {
                    self.target = Target::Destination { bucket, prefix };
                }
            }
            "ALLOW_UNVERSIONED_OVERWRITE" => self.allow_unversioned_overwrite = parse_bool(v)?,
            "TASK_CONCURRENCY" => {
                self.concurrency = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| format!("'{v}' is not a number from 1 to 64"))?;
            }
            "DEADLINE_MARGIN_SECONDS" => {
                let secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|n| (0.0..=600.0).contains(n))
                    .ok_or_else(|| format!("'{v}' is not a number of seconds from 0 to 600"))?;
                self.deadline_margin = Duration::from_secs_f64(secs);
            }
            "FUNCTION_TIMEOUT_SECONDS" => {
                let secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|n| (1.0..=900.0).contains(n))
                    .ok_or_else(|| {
                        format!("'{v}' is not a number of seconds from 1 to 900 (Lambda's range)")
                    })?;
                self.function_timeout = Some(Duration::from_secs_f64(secs));
            }
            other => unreachable!("knob {other} without a rule"),
        }
        Ok(())
    }

    /// The output codec's name: `alaw`, `mulaw`, `flac` or `opus`.
    pub fn codec_name(&self) -> &'static str {
        match self.encoding {
            Encoding::G711 => self.options.codec.name(),
            Encoding::Flac => "flac",
            Encoding::Opus { .. } => "opus",
        }
    }

    /// Settings that only make sense together, checked once all are read.
    fn check(self, source_name: &'static str) -> Result<Settings, SettingsError> {
        if self.output_suffix.is_some() && self.target == Target::InPlace {
            return Err(SettingsError {
                source_name,
                name: if source_name == "user argument" {
                    "outputSuffix".into()
                } else {
                    "OUTPUT_SUFFIX".into()
                },
                reason: "needs a destination (DEST_BUCKET or DEST_PREFIX): in place the key is \
                         kept, as replacing the original requires"
                    .into(),
            });
        }
        Ok(self)
    }

    /// The settings as shown by `invoke --dry-run` and in logs.
    pub fn describe(&self) -> serde_json::Value {
        let target = match &self.target {
            Target::InPlace => serde_json::json!("in place"),
            Target::Destination { bucket, prefix } => serde_json::json!({
                "bucket": bucket.as_deref().unwrap_or("(source bucket)"),
                "prefix": prefix,
            }),
        };
        serde_json::json!({
            "codec": self.codec_name(),
            "opusBitrate": matches!(self.encoding, Encoding::Opus { .. }).then_some(self.opus_bitrate),
            "outputSuffix": self.output_suffix,
            "downmix": self.options.downmix.name(),
            "storageClass": self.storage_class.as_str(),
            "tag": format!("{}={}", self.tag_key, self.tag_value),
            "target": target,
            "allowUnversionedOverwrite": self.allow_unversioned_overwrite,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_reference_design() {
        let s = from(&[]).unwrap();
        assert_eq!(s.options.codec, Codec::Alaw);
        assert_eq!(s.options.downmix, Downmix::Average);
        assert_eq!(s.storage_class, StorageClass::GlacierIr);
        assert_eq!(
            (s.tag_key.as_str(), s.tag_value.as_str()),
            ("converted", "true")
        );
        assert_eq!(s.target, Target::InPlace);
        assert!(!s.allow_unversioned_overwrite);
    }

    #[test]
    fn environment_is_read_and_validated() {
        let s = from(&[
            ("CODEC", "mulaw"),
            ("DOWNMIX", "stereo"),
            ("STORAGE_CLASS", "standard_ia"),
            ("DEST_PREFIX", "alaw/"),
            ("ALLOW_UNVERSIONED_OVERWRITE", "true"),
        ])
        .unwrap();
        assert_eq!(s.options.codec, Codec::Mulaw);
        assert_eq!(s.options.downmix, Downmix::Stereo);
        assert_eq!(s.storage_class, StorageClass::StandardIa);
        assert_eq!(
            s.target,
            Target::Destination {
                bucket: None,
                prefix: "alaw/".into()
            }
        );
        assert!(s.allow_unversioned_overwrite);
        let e = from(&[("STORAGE_CLASS", "COLD")]).unwrap_err().to_string();
        assert!(
            e.starts_with("environment variable STORAGE_CLASS: unknown storage class 'COLD'"),
            "{e}"
        );
        assert!(from(&[("TASK_CONCURRENCY", "0")]).is_err());
        assert!(from(&[("DEST_PREFIX", "/x")]).is_err());
    }

    #[test]
    fn user_arguments_override_and_unknown_ones_are_refused() {
        let base = from(&[("DEST_BUCKET", "archive")]).unwrap();
        let args: BTreeMap<String, String> = [("downmix", "sum"), ("destPrefix", "converted/")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = base.with_user_arguments(&args).unwrap();
        assert_eq!(s.options.downmix, Downmix::Sum);
        assert_eq!(
            s.target,
            Target::Destination {
                bucket: Some("archive".into()),
                prefix: "converted/".into()
            }
        );
        let typo: BTreeMap<String, String> = [("dowmix".to_string(), "sum".to_string())].into();
        let e = base.with_user_arguments(&typo).unwrap_err().to_string();
        assert!(
            e.starts_with("user argument dowmix: unknown (accepted: codec, downmix"),
            "{e}"
        );
        let sneaky: BTreeMap<String, String> = [(
            "allow_unversioned_overwrite".to_string(),
            "true".to_string(),
        )]
        .into();
        let e = base.with_user_arguments(&sneaky).unwrap_err().to_string();
        assert!(
            e.contains("only be set in the function's environment"),
            "{e}"
        );
        let bad: BTreeMap<String, String> = [("codec".to_string(), "vorbis".to_string())].into();
        let e = base.with_user_arguments(&bad).unwrap_err().to_string();
        assert!(
            e.contains("unknown codec 'vorbis'") && e.contains("opus"),
            "{e}"
        );
    }

    #[test]
    fn opus_bitrate_and_suffix_are_read_in_any_order_and_checked() {
        let args = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let base = from(&[]).unwrap();
        let s = base
            .with_user_arguments(&args(&[("opusBitrate", "24k"), ("codec", "opus")]))
            .unwrap();
        assert_eq!(s.encoding, Encoding::Opus { bitrate: 24_000 });
        let s = from(&[("OPUS_BITRATE", "12000"), ("CODEC", "OPUS")]).unwrap();
        assert_eq!(s.encoding, Encoding::Opus { bitrate: 12_000 });
        assert_eq!(
            from(&[("CODEC", "opus")]).unwrap().encoding,
            Encoding::Opus {
                bitrate: crate::encode::DEFAULT_OPUS_BITRATE
            }
        );
        for bad in ["6000", "200k", "fast", ""] {
            assert!(from(&[("OPUS_BITRATE", bad)]).is_err(), "{bad}");
        }
        let e = base
            .with_user_arguments(&args(&[("outputSuffix", ".ogg")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("user argument outputSuffix: needs a destination"),
            "{e}"
        );
        let s = base
            .with_user_arguments(&args(&[("outputSuffix", ".ogg"), ("destPrefix", "opus/")]))
            .unwrap();
        assert_eq!(s.output_suffix.as_deref(), Some(".ogg"));
        for bad in ["ogg", ".o/g", ".", ".toolongsuffix12345"] {
            assert!(
                base.with_user_arguments(&args(&[("outputSuffix", bad), ("destPrefix", "x/")]))
                    .is_err(),
                "{bad}"
            );
        }
    }
}
