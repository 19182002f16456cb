//! Which recordings are due: the objects found (by listing or inventory), the filters they must
//! pass, and the date window that decides which day prefixes are listed at all.

use chrono::{Datelike, NaiveDate};
use regex::Regex;

/// One object that may go into a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// Bucket name.
    pub bucket: String,
    /// Key, decoded.
    pub key: String,
    /// Version to act on (`null` for the null version), when the bucket keeps versions.
    pub version_id: Option<String>,
    /// Bytes.
    pub size: u64,
    /// Last modified, seconds since the epoch.
    pub last_modified: Option<i64>,
    /// S3 storage class name (`STANDARD` when S3 reports none).
    pub storage_class: String,
}

/// Storage classes skipped unless asked for: unreadable without a restore, or (GLACIER_IR)
/// most likely converted already and billed per GB read.
pub const DEFAULT_SKIP_CLASSES: [&str; 3] = ["GLACIER", "DEEP_ARCHIVE", "GLACIER_IR"];

/// Smallest original converted by default: A-law mono is a quarter of the original, and
/// GLACIER_IR bills at least 128 KiB per object, so smaller outputs save little and still pay
/// a Lambda invocation and three requests.
pub const DEFAULT_MIN_SIZE: u64 = 4 * 128 * 1024;

/// Conditions every selected recording meets.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Key suffix, compared case-insensitively (`.wav`); `None` accepts any.
    pub suffix: Option<String>,
    /// Key regex.
    pub regex: Option<Regex>,
    /// Last modified at or after (epoch seconds).
    pub modified_after: Option<i64>,
    /// Last modified before (epoch seconds).
    pub modified_before: Option<i64>,
    /// Smallest size in bytes.
    pub min_size: u64,
    /// Largest size in bytes.
    pub max_size: Option<u64>,
    /// Only these classes (empty: any).
    pub classes: Vec<String>,
    /// Never these classes.
    pub skip_classes: Vec<String>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            suffix: Some(".wav".into()),
            regex: None,
            modified_after: None,
            modified_before: None,
            min_size: DEFAULT_MIN_SIZE,
            max_size: None,
            classes: Vec::new(),
            skip_classes: DEFAULT_SKIP_CLASSES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Filter {
    /// Whether `r` is selected.
    pub fn accepts(&self, r: &Recording) -> bool {
        self.accepts_but_class(r) && self.class_ok(r)
    }

    /// Whether `r` would be selected but for its archive class (GLACIER, DEEP_ARCHIVE): what
    /// `doctor` reports as needing a restore first.
    pub fn archived(&self, r: &Recording) -> bool {
        crate::manifest::ARCHIVE_CLASSES.contains(&r.storage_class.as_str())
            && !self.class_ok(r)
            && self.accepts_but_class(r)
    }

    fn accepts_but_class(&self, r: &Recording) -> bool {
        if let Some(suffix) = &self.suffix
            && !(r.key.len() >= suffix.len()
                && r.key.is_char_boundary(r.key.len() - suffix.len())
                && r.key[r.key.len() - suffix.len()..].eq_ignore_ascii_case(suffix))
        {
            return false;
        }
        if self.regex.as_ref().is_some_and(|re| !re.is_match(&r.key)) {
            return false;
        }
        if r.size < self.min_size || self.max_size.is_some_and(|m| r.size > m) {
            return false;
        }
        match (r.last_modified, self.modified_after, self.modified_before) {
            (Some(t), Some(after), _) if t < after => return false,
            (Some(t), _, Some(before)) if t >= before => return false,
            (None, Some(_), _) | (None, _, Some(_)) => return false,
            _ => {}
        }
        true
    }

    fn class_ok(&self, r: &Recording) -> bool {
        let class = r.storage_class.as_str();
        if !self.classes.is_empty() && !self.classes.iter().any(|c| c.eq_ignore_ascii_case(class)) {
            return false;
        }
        !self
            .skip_classes
            .iter()
            .any(|c| c.eq_ignore_ascii_case(class))
    }
}

/// Inclusive range of recording days (UTC), as in Connect's `YYYY/MM/DD/` folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateWindow {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

impl DateWindow {
    /// Every day prefix of the window under `base`, for the years and months that exist.
    ///
    /// `existing` lists the `(year, month)` folders found under `base` (by delimiter listing),
    /// so a window that starts far in the past (a backfill) lists only days of months that hold
    /// recordings instead of every day since then.
    pub fn day_prefixes(&self, base: &str, existing: &[(i32, u32)]) -> Vec<String> {
        let mut out = Vec::new();
        let mut months: Vec<(i32, u32)> = existing
            .iter()
            .copied()
            .filter(|&(y, m)| {
                let first = NaiveDate::from_ymd_opt(y, m, 1);
                first.is_some_and(|f| f <= self.to && last_of_month(f) >= self.from)
            })
            .collect();
        months.sort_unstable();
        months.dedup();
        for (y, m) in months {
            let first = NaiveDate::from_ymd_opt(y, m, 1).expect("valid month");
            let mut day = first.max(self.from);
            let end = last_of_month(first).min(self.to);
            while day <= end {
                out.push(format!(
                    "{base}{:04}/{:02}/{:02}/",
                    day.year(),
                    day.month(),
                    day.day()
                ));
                day = day.succ_opt().expect("date in range");
            }
        }
        out
    }
}

fn last_of_month(first: NaiveDate) -> NaiveDate {
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    next.expect("valid date").pred_opt().expect("valid date")
}

/// Parses `7d`, `2w`, `3m` (30 days) or a plain number of days.
pub fn parse_age(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('d') => (&s[..s.len() - 1], 1),
        Some('w') => (&s[..s.len() - 1], 7),
        Some('m') => (&s[..s.len() - 1], 30),
        Some('y') => (&s[..s.len() - 1], 365),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("{s:?} is not an age such as 7d, 2w, 3m or 1y"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, size: u64, class: &str, t: i64) -> Recording {
        Recording {
            bucket: "b".into(),
            key: key.into(),
            version_id: None,
            size,
            last_modified: Some(t),
            storage_class: class.into(),
        }
    }

    #[test]
    fn default_filter_takes_big_standard_wavs() {
        let f = Filter::default();
        assert!(f.accepts(&rec("a/x.wav", 600_000, "STANDARD", 0)));
        assert!(
            f.accepts(&rec("a/x.WAV", 600_000, "STANDARD", 0)),
            "suffix is case-insensitive"
        );
        assert!(!f.accepts(&rec("a/x.mp3", 600_000, "STANDARD", 0)));
        assert!(
            !f.accepts(&rec("a/x.wav", 100_000, "STANDARD", 0)),
            "under 512 KiB"
        );
        for c in ["GLACIER", "DEEP_ARCHIVE", "GLACIER_IR"] {
            assert!(!f.accepts(&rec("a/x.wav", 600_000, c, 0)), "{c}");
        }
        assert!(f.accepts(&rec("a/é.wav", 600_000, "STANDARD_IA", 0)));
        assert!(!f.accepts(&rec("wav", 600_000, "STANDARD", 0)));
    }

    #[test]
    fn every_filter_applies() {
        let f = Filter {
            suffix: None,
            regex: Some(Regex::new("CallRecordings/").unwrap()),
            modified_after: Some(100),
            modified_before: Some(200),
            min_size: 0,
            max_size: Some(10),
            classes: vec!["STANDARD".into()],
            skip_classes: vec![],
        };
        assert!(f.accepts(&rec("CallRecordings/a", 5, "STANDARD", 150)));
        assert!(!f.accepts(&rec("Analysis/a", 5, "STANDARD", 150)));
        assert!(!f.accepts(&rec("CallRecordings/a", 11, "STANDARD", 150)));
        assert!(!f.accepts(&rec("CallRecordings/a", 5, "STANDARD", 99)));
        assert!(!f.accepts(&rec("CallRecordings/a", 5, "STANDARD", 200)));
        assert!(!f.accepts(&rec("CallRecordings/a", 5, "STANDARD_IA", 150)));
    }

    #[test]
    fn window_lists_only_existing_months_days() {
        let w = DateWindow {
            from: NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2024, 3, 2).unwrap(),
        };
        let p = w.day_prefixes(
            "connect/a/CallRecordings/",
            &[(2024, 2), (2024, 3), (2024, 4), (2023, 13)],
        );
        assert_eq!(
            p.len(),
            29 + 2,
            "February 2024 (leap) and two days of March"
        );
        assert_eq!(p[0], "connect/a/CallRecordings/2024/02/01/");
        assert_eq!(p.last().unwrap(), "connect/a/CallRecordings/2024/03/02/");
        let one = DateWindow {
            from: NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
            to: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        };
        assert_eq!(
            one.day_prefixes("", &[(2024, 12), (2025, 1)]),
            vec!["2024/12/31/", "2025/01/01/"]
        );
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("7d"), Ok(7));
        assert_eq!(parse_age("2w"), Ok(14));
        assert_eq!(parse_age("30"), Ok(30));
        assert!(parse_age("soon").is_err());
    }
}
