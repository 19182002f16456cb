//! Pictures for the people who approve the project: the estimate as a chart (SVG, or a page with
//! it and its table) and a job's report as one self-contained HTML page (inline SVG and CSS, no
//! fetches). Charts are drawn with `plotters`' SVG backend; its text stays `<text>`, so the
//! labels and totals can be read back from the file.

use plotters::prelude::*;

use batch_contract::report::ReportRow;
use batch_contract::result::{Action, Summary};

use crate::estimate::{Estimate, Prices, money};
use crate::report::ReportSummary;

/// Size of the estimate chart, pixels.
pub const ESTIMATE_SIZE: (u32, u32) = (1000, 560);
/// Size of each chart of the report page.
pub const REPORT_CHART_SIZE: (u32, u32) = (860, 360);

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

/// One series of the estimate chart: its value in a month.
type MonthValue = Box<dyn Fn(&crate::estimate::Month) -> f64>;

/// HTML-escapes text (`&`, `<`, `>`, quotes).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The first month from which the cumulative saving is positive, if any within the projection.
pub fn break_even(e: &Estimate) -> Option<u32> {
    let mut cumulative = 0.0;
    for m in &e.months {
        cumulative += m.before - m.after();
        if cumulative > 0.0 {
            return Some(m.month);
        }
    }
    None
}

/// The totals the chart labels, as the table prints them.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// Storage before, all years.
    pub before: String,
    /// Storage after.
    pub after_storage: String,
    /// Processing.
    pub processing: String,
    /// Everything after.
    pub after: String,
    /// Before minus after.
    pub saving: String,
}

/// The projection's totals, formatted as [`crate::estimate::table`]'s total row.
pub fn totals(e: &Estimate) -> Totals {
    let storage: f64 = e.years.iter().map(|y| y.after_storage).sum();
    let processing: f64 = e.years.iter().map(|y| y.processing).sum();
    Totals {
        before: money(e.total_before),
        after_storage: money(storage),
        processing: money(processing),
        after: money(e.total_after),
        saving: money(e.total_before - e.total_after),
    }
}

/// Cost per month before and after, storage and processing apart, the break-even month and the
/// totals of the whole projection, as an SVG document.
pub fn estimate_svg(e: &Estimate) -> String {
    let mut svg = String::new();
    if let Err(err) = draw_estimate(e, &mut svg) {
        // plotters' errors come from the drawing only (no I/O): say it in the picture.
        svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\"><text x=\"10\" \
             y=\"20\">chart could not be drawn: {}</text></svg>",
            ESTIMATE_SIZE.0,
            ESTIMATE_SIZE.1,
            escape(&err.to_string())
        );
    }
    svg
}

fn draw_estimate(e: &Estimate, out: &mut String) -> DrawResult<()> {
    let months = e.months.len().max(1) as u32;
    let ymax = e
        .months
        .iter()
        .map(|m| m.before.max(m.after()))
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.15;
    let years = e.years.len();
    let t = totals(e);
    {
        let root = SVGBackend::with_string(out, ESTIMATE_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (top, chart_area) = root.split_vertically(70);
        top.draw(&Text::new(
            format!(
                "{years}-year totals: before {}, after {} (storage {}, processing {}), saving {}",
                t.before, t.after, t.after_storage, t.processing, t.saving
            ),
            (20, 44),
            ("sans-serif", 17).into_font(),
        ))?;
        top.draw(&Text::new(
            "Cost per month, before and after conversion",
            (20, 16),
            ("sans-serif", 22).into_font(),
        ))?;
        let mut chart = ChartBuilder::on(&chart_area)
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(1u32..months, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("month")
            .y_desc("$ per month")
            .y_label_formatter(&|y| money(*y))
            .draw()?;
        let series: [(&str, RGBColor, MonthValue); 4] = [
            (
                "before: storage",
                RGBColor(200, 40, 40),
                Box::new(|m| m.before),
            ),
            (
                "after: storage",
                RGBColor(30, 110, 200),
                Box::new(|m| m.after_standard + m.after_glacier_ir),
            ),
            (
                "after: processing",
                RGBColor(230, 150, 20),
                Box::new(|m| m.processing),
            ),
            (
                "after: total",
                RGBColor(20, 140, 60),
                Box::new(|m| m.after()),
            ),
        ];
        for (name, color, value) in series {
            chart
                .draw_series(LineSeries::new(
                    e.months.iter().map(|m| (m.month, value(m))),
                    color.stroke_width(2),
                ))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        if let Some(b) = break_even(e) {
            let grey = RGBColor(90, 90, 90);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(b, 0.0), (b, ymax * 0.92)],
                grey.stroke_width(1),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("break-even: month {b}"),
                (b, ymax * 0.95),
                ("sans-serif", 15).into_font(),
            )))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(())
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:960px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}\
td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}th{background:#eee}\
td.l,th.l{text-align:left}p.note{color:#555;font-size:13px}svg{display:block;margin:8px 0}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

/// The SVG without its XML declaration, for inlining in HTML.
fn inline(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

/// The estimate chart and its yearly table on one page.
pub fn estimate_html(e: &Estimate) -> String {
    let mut rows = String::new();
    for y in &e.years {
        rows += &format!(
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            y.year,
            money(y.before),
            money(y.after_storage),
            money(y.processing),
            money(y.after),
            money(y.saving)
        );
    }
    let t = totals(e);
    rows += &format!(
        "<tr><th class=\"l\">total</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        t.before, t.after_storage, t.processing, t.after, t.saving
    );
    let be = match break_even(e) {
        Some(m) => format!("The conversion has paid for itself from month {m}."),
        None => "The conversion does not pay for itself within the projection.".to_string(),
    };
    page(
        "Estimate: storage cost before and after",
        &format!(
            "<h1>Storage cost before and after conversion</h1>\n{}\n<p>{be} Processing: {} per \
             1000 minutes of audio.</p>\n<table><tr><th class=\"l\">year</th><th>before</th>\
             <th>after storage</th><th>processing</th><th>after</th><th>saving</th></tr>{rows}\
             </table>\n<p class=\"note\">Prices and workload are the estimate's inputs (see \
             <code>manifest-builder estimate --help</code>).</p>",
            inline(&estimate_svg(e)),
            money(e.processing_per_1000_minutes)
        ),
    )
}

/// Processing seconds per recording-minute of each converted task (its handler result's
/// elapsed time over its audio duration).
pub fn seconds_per_minute(rows: &[ReportRow]) -> Vec<f64> {
    rows.iter()
        .filter(|r| !r.failed())
        .filter_map(|r| Summary::from_result_string(&r.message))
        .filter(|s| s.action == Action::Converted && s.duration_seconds > 0.0)
        .map(|s| s.elapsed_seconds / (s.duration_seconds / 60.0))
        .collect()
}

/// Tasks by outcome: `converted`, `skipped`, and `failed: <code>`.
pub fn outcomes(rows: &[ReportRow]) -> Vec<(String, u64)> {
    let mut by: std::collections::BTreeMap<String, u64> = Default::default();
    for r in rows {
        let k = if r.failed() {
            format!(
                "failed: {}",
                if r.error_code.is_empty() {
                    "(no code)"
                } else {
                    &r.error_code
                }
            )
        } else {
            match Summary::from_result_string(&r.message).map(|s| s.action) {
                Some(Action::Converted) => "converted".to_string(),
                Some(Action::Skipped) => "skipped".to_string(),
                None => "succeeded (no result)".to_string(),
            }
        };
        *by.entry(k).or_default() += 1;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn bar_chart(title: &str, bars: &[(String, u64)]) -> DrawResult<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, REPORT_CHART_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let n = bars.len().max(1) as u32;
        let ymax = bars.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64 * 1.2;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            // A segmented range a..b has b - a + 1 segments: one per bar.
            .build_cartesian_2d((0u32..n - 1).into_segmented(), 0f64..ymax)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("tasks")
            .x_labels(bars.len().max(1))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (name, count))| {
            let color = if name.starts_with("failed") {
                RGBColor(200, 40, 40)
            } else if name == "skipped" {
                RGBColor(150, 150, 150)
            } else {
                RGBColor(20, 140, 60)
            };
            let i = i as u32;
            Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *count as f64),
                ],
                color.filled(),
            )
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, count))| {
            Text::new(
                count.to_string(),
                (
                    SegmentValue::CenterOf(i as u32),
                    *count as f64 + ymax * 0.03,
                ),
                ("sans-serif", 14).into_font(),
            )
        }))?;
        root.present()?;
    }
    Ok(out)
}

fn histogram_chart(values: &[f64]) -> DrawResult<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, REPORT_CHART_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let max = values.iter().copied().fold(0.0f64, f64::max).max(1e-3);
        const BINS: u32 = 20;
        let width = max / f64::from(BINS) * 1.0001;
        let mut counts = vec![0u64; BINS as usize];
        for v in values {
            let b = ((v / width) as usize).min(BINS as usize - 1);
            counts[b] += 1;
        }
        let ymax = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Processing seconds per recording-minute ({} recordings)",
                    values.len()
                ),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..width * f64::from(BINS), 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("seconds of processing per minute of audio")
            .y_desc("recordings")
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(i, c)| {
            let x0 = i as f64 * width;
            Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.95, *c as f64)],
                RGBColor(30, 110, 200).filled(),
            )
        }))?;
        root.present()?;
    }
    Ok(out)
}

fn chart_or_note(r: DrawResult<String>) -> String {
    match r {
        Ok(svg) => inline(&svg).to_string(),
        Err(e) => format!(
            "<p>chart could not be drawn: {}</p>",
            escape(&e.to_string())
        ),
    }
}

/// A link to a report location: the S3 console for `s3://`, a relative file link for a path.
fn link(location: &str) -> String {
    let href = match location.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            format!(
                "https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={}",
                percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC)
            )
        }
        None => format!(
            "file://{}",
            std::path::Path::new(location)
                .canonicalize()
                .unwrap_or_else(|_| location.into())
                .display()
        ),
    };
    format!("<a href=\"{}\">{}</a>", escape(&href), escape(location))
}

/// The job's report as one self-contained page: totals, bytes, saving per month, outcomes by
/// code, failure reasons ranked, processing time per recording-minute, links to the files.
pub fn report_html(
    title: &str,
    s: &ReportSummary,
    rows: &[ReportRow],
    files: &[String],
    prices: &Prices,
) -> String {
    let gb = |b: u64| b as f64 / 1e9;
    let before_month = gb(s.bytes_before) * prices.standard_gb_month;
    let after_month = gb(s.bytes_after) * prices.glacier_ir_gb_month;
    let saving_month = before_month - after_month;
    let pct = 100.0 * s.saved() as f64 / s.bytes_before.max(1) as f64;
    let mut body = format!(
        "<h1>{}</h1>\n<h2>Totals</h2>\n<table>\
         <tr><th class=\"l\">tasks</th><td id=\"tasks\">{}</td></tr>\
         <tr><th class=\"l\">succeeded</th><td id=\"succeeded\">{}</td></tr>\
         <tr><th class=\"l\">converted</th><td id=\"converted\">{}</td></tr>\
         <tr><th class=\"l\">skipped</th><td id=\"skipped\">{}</td></tr>\
         <tr><th class=\"l\">failed</th><td id=\"failed\">{}</td></tr>\
         <tr><th class=\"l\">audio converted</th><td>{:.1} h</td></tr>\
         <tr><th class=\"l\">bytes before</th><td>{:.1} MB (<span id=\"bytes-before\">{}</span> bytes)</td></tr>\
         <tr><th class=\"l\">bytes after</th><td>{:.1} MB (<span id=\"bytes-after\">{}</span> bytes)</td></tr>\
         <tr><th class=\"l\">saved</th><td>{:.1} MB (<span id=\"saved\">{}</span> bytes, {pct:.0} %)</td></tr>\
         <tr><th class=\"l\">saving per month</th><td id=\"saving-month\">{}</td></tr>\
         </table>\n<p class=\"note\">Saving per month: the originals at S3 Standard (${}/GB-month) \
         against the conversions at Glacier Instant Retrieval (${}/GB-month), once the lifecycle \
         rule has expired the noncurrent originals.</p>",
        escape(title),
        s.tasks,
        s.succeeded,
        s.converted,
        s.skipped,
        s.failed,
        s.audio_seconds / 3600.0,
        s.bytes_before as f64 / 1e6,
        s.bytes_before,
        s.bytes_after as f64 / 1e6,
        s.bytes_after,
        s.saved() as f64 / 1e6,
        s.saved(),
        if saving_month.abs() < 1.0 {
            format!("${saving_month:.4}")
        } else {
            format!("${saving_month:.2}")
        },
        prices.standard_gb_month,
        prices.glacier_ir_gb_month
    );
    body += "\n<h2>Outcomes</h2>\n";
    body += &chart_or_note(bar_chart("Tasks by outcome", &outcomes(rows)));
    body += "\n<h2>Failure reasons</h2>\n";
    if s.failure_reasons.is_empty() {
        body += "<p>No task failed.</p>";
    } else {
        body += "<table><tr><th>tasks</th><th class=\"l\">reason</th></tr>";
        for (reason, n) in &s.failure_reasons {
            body += &format!(
                "<tr><td>{n}</td><td class=\"l\">{}</td></tr>",
                escape(reason)
            );
        }
        body += "</table>";
    }
    if !s.skip_reasons.is_empty() {
        body +=
            "\n<h2>Skip reasons</h2>\n<table><tr><th>tasks</th><th class=\"l\">reason</th></tr>";
        for (reason, n) in &s.skip_reasons {
            body += &format!(
                "<tr><td>{n}</td><td class=\"l\">{}</td></tr>",
                escape(reason)
            );
        }
        body += "</table>";
    }
    body += "\n<h2>Processing time</h2>\n";
    let per_minute = seconds_per_minute(rows);
    if per_minute.is_empty() {
        body += "<p>No converted recording to time.</p>";
    } else {
        body += &chart_or_note(histogram_chart(&per_minute));
    }
    body += "\n<h2>Report files</h2>\n<ul>";
    body += &format!("<li>{}</li>", link(&s.manifest));
    for f in files {
        body += &format!("<li>{}</li>", link(f));
    }
    body += "</ul>";
    page(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{Workload, project};

    fn estimate() -> Estimate {
        let w = Workload {
            minutes_per_month: 1_000_000.0,
            backlog_gb: 50_000.0,
            ..Workload::default()
        };
        project(&w, &Prices::default(), 72)
    }

    #[test]
    fn the_chart_names_its_series_and_the_tables_totals() {
        let e = estimate();
        let svg = estimate_svg(&e);
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{}",
            &svg[..80]
        );
        for name in [
            "before: storage",
            "after: storage",
            "after: processing",
            "after: total",
        ] {
            assert!(svg.contains(name), "series {name} missing");
        }
        let t = totals(&e);
        let table = crate::estimate::table(&e);
        let total_row = table.lines().find(|l| l.starts_with("total")).unwrap();
        for v in [
            &t.before,
            &t.after_storage,
            &t.processing,
            &t.after,
            &t.saving,
        ] {
            assert!(total_row.contains(v.as_str()), "{v} not in {total_row}");
            assert!(svg.contains(v.as_str()), "{v} not in the chart");
        }
        assert!(svg.contains("6-year totals"));
        let b = break_even(&e).expect("a backlog this size pays back");
        assert!(svg.contains(&format!("break-even: month {b}")));
        // Each series is a line with a point per month (and its legend mark).
        for color in ["#C82828", "#1E6EC8", "#E69614", "#148C3C"] {
            let lines: Vec<&str> = svg
                .split("<polyline")
                .skip(1)
                .filter(|p| p.contains(&format!("stroke=\"{color}\"")))
                .collect();
            assert_eq!(lines.len(), 2, "{color}: line and legend mark");
            let points = lines
                .iter()
                .map(|l| {
                    l.split("points=\"")
                        .nth(1)
                        .unwrap()
                        .split('"')
                        .next()
                        .unwrap()
                })
                .map(|p| p.split_whitespace().count())
                .max()
                .unwrap();
            assert_eq!(points, e.months.len(), "{color}: a point per month");
        }
    }

    #[test]
    fn break_even_is_the_first_month_the_cumulative_saving_is_positive() {
        let e = estimate();
        let b = break_even(&e).unwrap();
        let cum = |n: u32| -> f64 {
            e.months
                .iter()
                .take(n as usize)
                .map(|m| m.before - m.after())
                .sum()
        };
        assert!(cum(b) > 0.0);
        assert!(b == 1 || cum(b - 1) <= 0.0);
    }

    #[test]
    fn a_single_outcome_and_none_still_draw() {
        let one = bar_chart("t", &[("converted".into(), 3)]).unwrap();
        assert!(one.contains(">\nconverted\n<"), "{one}");
        assert!(bar_chart("t", &[]).is_ok());
        assert!(histogram_chart(&[0.5]).is_ok());
        assert!(histogram_chart(&[0.0, 0.0]).is_ok());
    }

    #[test]
    fn html_is_escaped_and_self_contained() {
        let e = estimate();
        let html = estimate_html(&e);
        assert!(html.contains("<svg"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("src=\"http"));
        assert!(!html.contains("<link"));
        assert_eq!(escape("<a&\"'>"), "&lt;a&amp;&quot;&#39;&gt;");
    }
}
