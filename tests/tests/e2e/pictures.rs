//! The pictures as people open them: `estimate --svg/--html` and the demo job's `report --html`
//! rendered by headless Chromium (Debian's package, installed by `.ci/run`) to PNG, which must
//! have the window's size and not be blank; and the SVG's content read back: its series, its
//! labels and totals equal to the table's.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::*;
use serde_json::Value;

const WINDOW: (u32, u32) = (1100, 1400);

fn chromium(test: &str) -> Option<&'static str> {
    ["chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| have(c))
        .or_else(|| require_tool("chromium", test).then_some("chromium"))
}

/// Renders `page` (a file) to a PNG of [`WINDOW`]'s size; returns (width, height, RGBA pixels).
fn render(browser: &str, page: &Path, out: &Path) -> (u32, u32, Vec<u8>) {
    let profile = std::env::temp_dir().join(format!(
        "chromium-profile-{}-{}",
        std::process::id(),
        out.file_name().unwrap().to_string_lossy()
    ));
    let status = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(out).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    let rgba: Vec<u8> = buf
        .chunks(channels)
        .flat_map(|p| [p[0], p[1 % channels], p[2 % channels], 255])
        .collect();
    (info.width, info.height, rgba)
}

/// Not blank: some share of the pixels is not the background, in several colours.
fn assert_drawn(what: &str, (w, h, px): &(u32, u32, Vec<u8>), min_colours: usize) {
    assert_eq!((*w, *h), WINDOW, "{what}: screenshot size");
    let pixels: Vec<[u8; 3]> = px.chunks(4).map(|p| [p[0], p[1], p[2]]).collect();
    let background = pixels[0];
    let drawn = pixels.iter().filter(|p| **p != background).count();
    assert!(
        drawn * 100 > pixels.len(),
        "{what}: only {drawn} of {} pixels drawn",
        pixels.len()
    );
    let mut colours: Vec<[u8; 3]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() >= min_colours,
        "{what}: {} colours",
        colours.len()
    );
    // The series colours of the charts are there (red of "before", green of the good bars).
    let reddish = pixels
        .iter()
        .filter(|p| p[0] > 150 && p[1] < 90 && p[2] < 90)
        .count();
    assert!(
        reddish > 50,
        "{what}: no red series drawn ({reddish} pixels)"
    );
}

fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pictures-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_estimate_chart_renders_and_labels_the_tables_totals() {
    let test = "pictures_estimate";
    let Some(bin) = require_binary("manifest-builder", test) else {
        return;
    };
    let Some(browser) = chromium(test) else {
        return;
    };
    let d = dir(test);
    let (svg, html) = (d.join("estimate.svg"), d.join("estimate.html"));
    let out = aws_command(&bin)
        .args([
            "estimate",
            "--minutes-per-month",
            "2000000",
            "--backlog-gb",
            "80000",
        ])
        .arg("--svg")
        .arg(&svg)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let total: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("total"))
        .expect("a total row")
        .split_whitespace()
        .skip(1)
        .collect();
    assert_eq!(total.len(), 5, "{table}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let label = format!(
        "6-year totals: before {}, after {} (storage {}, processing {}), saving {}",
        total[0], total[3], total[1], total[2], total[4]
    );
    assert!(text.contains(&label), "{label} not in the SVG");
    for series in [
        "before: storage",
        "after: storage",
        "after: processing",
        "after: total",
    ] {
        assert!(text.contains(series), "{series}");
    }
    assert!(text.contains("break-even: month "), "no break-even mark");
    assert!(
        text.contains("$ per month") && text.contains(">\nmonth\n<"),
        "axis labels"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains(&label));
    // Self-contained: nothing to fetch (the only URL is the SVG namespace, never loaded).
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("<link"));
    assert!(
        !page
            .replace("http://www.w3.org/2000/svg", "")
            .contains("http")
    );
    // The JSON totals are the ones the pictures show.
    let json = aws_command(&bin)
        .args([
            "--json",
            "estimate",
            "--minutes-per-month",
            "2000000",
            "--backlog-gb",
            "80000",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    let before = v["total_before"].as_f64().unwrap();
    let shown = total[0].trim_start_matches('$').replace(',', "");
    assert!(
        (before - shown.parse::<f64>().unwrap()).abs() <= 0.5,
        "{before} vs {shown}"
    );

    let rendered = render(browser, &svg, &d.join("estimate-svg.png"));
    assert_drawn("estimate.svg", &rendered, 8);
    let rendered = render(browser, &html, &d.join("estimate-html.png"));
    assert_drawn("estimate.html", &rendered, 8);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_demo_writes_its_report_page_and_report_html_renders() {
    let test = "pictures_report";
    let Some(bin) = require_binary("manifest-builder", test) else {
        return;
    };
    let Some(browser) = chromium(test) else {
        return;
    };
    let d = dir(test);
    let store = d.join("store");
    let out = aws_command(&bin)
        .args([
            "demo",
            "--recordings",
            "8",
            "--min-minutes",
            "0.3",
            "--max-minutes",
            "0.6",
        ])
        .arg("--dir")
        .arg(&store)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{said}");
    let page = said
        .lines()
        .find_map(|l| l.strip_prefix("report page: "))
        .expect("the demo prints its report page");
    let page = PathBuf::from(page.trim());
    let html = std::fs::read_to_string(&page).unwrap();
    let job = page
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("report-")
        .to_string();
    // `report JOB --html` of the same job, and its totals in JSON.
    let again = d.join("report.html");
    let out = aws_command(&bin)
        .args(["--json", "report", &job, "--local", "--embedded-s3"])
        .arg(store.join("s3"))
        .arg("--engine-dir")
        .arg(store.join("engine"))
        .arg("--html")
        .arg(&again)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let second = std::fs::read_to_string(&again).unwrap();
    for text in [&html, &second] {
        for (id, field) in [
            ("tasks", "tasks"),
            ("succeeded", "succeeded"),
            ("converted", "converted"),
            ("skipped", "skipped"),
            ("failed", "failed"),
            ("bytes-before", "bytes_before"),
            ("bytes-after", "bytes_after"),
        ] {
            let want = format!("id=\"{id}\">{}<", v[field].as_u64().unwrap());
            assert!(text.contains(&want), "{want} not in the page");
        }
        assert!(text.contains("Tasks by outcome"));
        assert!(text.contains("Processing seconds per recording-minute"));
        assert!(
            text.contains("failed: PermanentFailure"),
            "outcomes by code"
        );
        for (reason, _) in v["failure_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_str().unwrap(), p[1].as_u64().unwrap()))
        {
            let shown = reason
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;");
            assert!(text.contains(&shown), "failure reason {reason} not ranked");
        }
        assert!(text.contains("manifest.json</a>"), "a link to the report");
        assert!(!text.contains("<script") && !text.contains("<link") && !text.contains("src="));
    }
    let rendered = render(browser, &page, &d.join("report.png"));
    assert_drawn("report page", &rendered, 8);
    let _ = std::fs::remove_dir_all(&d);
}
