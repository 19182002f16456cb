//! Text that goes into a report cell or a log line.

/// Replaces control characters by spaces and cuts to `max` bytes on a character boundary.
pub fn one_line(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.len() <= max {
        return clean;
    }
    let ellipsis = "...";
    let mut cut = max - ellipsis.len();
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ellipsis}", &clean[..cut])
}
