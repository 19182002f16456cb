//! What a successful task did: the handler writes it as the `resultString` of a `Succeeded`
//! task, the completion report carries it, and `report` reads it back typed.

use serde::{Deserialize, Serialize};

use crate::event::MAX_RESULT_STRING;

/// What the handler did with a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// A conversion was written.
    Converted,
    /// Nothing to do (already converted, or not worth it).
    Skipped,
}

impl Action {
    /// The word used in results and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Converted => "converted",
            Action::Skipped => "skipped",
        }
    }
}

/// What a successful task did, reported as the compact JSON `resultString`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Converted or skipped.
    pub action: Action,
    /// Why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Size of the original.
    #[serde(default)]
    pub bytes_in: u64,
    /// Size written (0 when skipped).
    #[serde(default)]
    pub bytes_out: u64,
    /// Audio duration in seconds.
    #[serde(default)]
    pub duration_seconds: f64,
    /// Processing time in seconds.
    #[serde(default)]
    pub elapsed_seconds: f64,
    /// Key written (empty when skipped).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_key: String,
    /// Version id of the written object, when the bucket is versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_version_id: Option<String>,
    /// Codec written, or found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// Downmix applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downmix: Option<String>,
    /// Format of the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_format: Option<String>,
    /// Bytes of a trailing partial frame that were dropped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_bytes: u64,
    /// Bytes the WAV header promised beyond the end of the object (a cut-off recording).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    /// A skip: nothing written.
    pub fn skipped(reason: impl Into<String>, bytes_in: u64) -> Self {
        Summary {
            action: Action::Skipped,
            reason: Some(reason.into()),
            bytes_in,
            bytes_out: 0,
            duration_seconds: 0.0,
            elapsed_seconds: 0.0,
            output_key: String::new(),
            output_version_id: None,
            codec: None,
            downmix: None,
            input_format: None,
            dropped_bytes: 0,
            missing_bytes: 0,
        }
    }

    /// The JSON, kept under the result size limit by shortening the output key if it must.
    pub fn to_result_string(&self) -> String {
        let json = serde_json::to_string(self).expect("summary serialises");
        if json.len() <= MAX_RESULT_STRING {
            return json;
        }
        let mut short = self.clone();
        let excess = json.len() - MAX_RESULT_STRING + 3;
        let mut cut = short.output_key.len().saturating_sub(excess);
        while !short.output_key.is_char_boundary(cut) {
            cut -= 1;
        }
        short.output_key = format!("{}...", &short.output_key[..cut]);
        serde_json::to_string(&short).expect("summary serialises")
    }

    /// Reads a `resultString` back; `None` when it is not ours (another function, a failure).
    pub fn from_result_string(s: &str) -> Option<Summary> {
        serde_json::from_str(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_json_is_compact_and_bounded() {
        let mut s = Summary::skipped("already converted (tag converted=true)", 10);
        assert_eq!(
            s.to_result_string(),
            r#"{"action":"skipped","reason":"already converted (tag converted=true)","bytesIn":10,"bytesOut":0,"durationSeconds":0.0,"elapsedSeconds":0.0}"#
        );
        s.action = Action::Converted;
        s.output_key = "k/".repeat(700);
        let out = s.to_result_string();
        assert!(out.len() <= MAX_RESULT_STRING, "{}", out.len());
        let v: serde_json::Value = serde_json::from_str(&out).expect("still valid JSON");
        assert!(v["outputKey"].as_str().unwrap().ends_with("..."));
    }

    #[test]
    fn a_result_string_reads_back_to_the_same_summary() {
        let s = Summary {
            action: Action::Converted,
            output_key: "a b/ü.wav".into(),
            output_version_id: Some("v2".into()),
            codec: Some("alaw".into()),
            downmix: Some("average".into()),
            missing_bytes: 7,
            ..Summary::skipped("x", 100)
        };
        assert_eq!(Summary::from_result_string(&s.to_result_string()), Some(s));
        assert_eq!(Summary::from_result_string("converted"), None);
        assert_eq!(Summary::from_result_string(r#"{"action":"deleted"}"#), None);
    }
}
