//! Charts as inline SVG drawn on the server: no script, no chart library, no external
//! asset. Each chart is an `img` role with a title and a description, every bar has its own
//! title (what a pointer shows), and the same numbers follow in a table, so a screen reader
//! or a narrow phone loses nothing. The SVG scales to its box (`viewBox`, width 100 %).

use maud::{html, Markup};

/// The drawing's size in SVG units; it scales to the page.
const W: i64 = 600;
const H: i64 = 200;
/// Room at the bottom for the first and last day's labels, at the left for the scale.
const BOTTOM: i64 = 20;
const LEFT: i64 = 40;

/// One stacked part of a bar chart: a name, the CSS class that colours it, a value per bar.
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub values: Vec<i64>,
}

/// A round top for the scale: the smallest of 1, 2, 5 × 10ⁿ at or above `max`.
fn scale_top(max: i64) -> i64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step >= max {
                return m * step;
            }
        }
        step *= 10;
    }
}

fn legend(series: &[Series<'_>]) -> Markup {
    html! {
        p.legend {
            @for s in series { span class=(format!("key {}", s.class)) { "■ " } (s.name) " " }
        }
    }
}

/// The rectangles of bar `i`, bottom up: class, top and height of each non-empty part.
fn stack<'a>(
    series: &'a [Series<'a>],
    i: usize,
    plot_h: i64,
    top: i64,
) -> Vec<(&'a str, i64, i64)> {
    let mut y = plot_h;
    let mut out = Vec::new();
    for s in series {
        let h = s.values[i].max(0) * plot_h / top;
        if h > 0 {
            y -= h;
            out.push((s.class, y, h));
        }
    }
    out
}

/// Bars of stacked series over `labels` (one bar each); `fmt` writes a value for people.
pub fn stacked_bars(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    fmt: &dyn Fn(i64) -> String,
) -> Markup {
    let n = labels.len().max(1) as i64;
    let totals: Vec<i64> = (0..labels.len())
        .map(|i| series.iter().map(|s| s.values[i].max(0)).sum())
        .collect();
    let top = scale_top(totals.iter().copied().max().unwrap_or(0).max(1));
    let plot_w = W - LEFT;
    let plot_h = H - BOTTOM;
    let slot = plot_w / n;
    let bar = (slot * 4 / 5).max(1);
    let sum: i64 = totals.iter().sum();
    let desc = format!(
        "{} bars from {} to {}; {} in all; the highest bar {}.",
        labels.len(),
        labels.first().map_or("", String::as_str),
        labels.last().map_or("", String::as_str),
        fmt(sum),
        fmt(totals.iter().copied().max().unwrap_or(0)),
    );
    html! {
        figure.chart id=(id) {
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-labelledby=(format!("{id}-t {id}-d")) preserveAspectRatio="xMidYMid meet" {
                title id=(format!("{id}-t")) { (title) }
                desc id=(format!("{id}-d")) { (desc) }
                line.axis x1=(LEFT) y1=(plot_h) x2=(W) y2=(plot_h) {}
                text.tick x=(LEFT - 4) y="12" text-anchor="end" { (fmt(top)) }
                text.tick x=(LEFT - 4) y=(plot_h) text-anchor="end" { "0" }
                @for (i, label) in labels.iter().enumerate() {
                    @let x = LEFT + i as i64 * slot + (slot - bar) / 2;
                    g {
                        title { (label) ": " @for (k, s) in series.iter().enumerate() { @if k > 0 { ", " } (fmt(s.values[i])) " " (s.name) } }
                        @for (class, y, h) in stack(series, i, plot_h, top) {
                            rect class=(class) x=(x) y=(y) width=(bar) height=(h) {}
                        }
                        @if totals[i] == 0 {
                            rect.empty x=(x) y=(plot_h - 1) width=(bar) height="1" {}
                        }
                    }
                }
                text.tick x=(LEFT) y=(H - 4) { (labels.first().map_or("", String::as_str)) }
                text.tick x=(W) y=(H - 4) text-anchor="end" { (labels.last().map_or("", String::as_str)) }
            }
            @if series.len() > 1 { (legend(series)) }
            details {
                summary { "The numbers" }
                div.scroll {
                    table {
                        thead { tr { th { "Day" } @for s in series { th { (s.name) } } } }
                        tbody {
                            @for (i, label) in labels.iter().enumerate().rev() {
                                tr { td { (label) } @for s in series { td { (fmt(s.values[i])) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One horizontal bar per row, as a percentage (`None`: too few orders to say, drawn
/// empty); `note` per row says what the percentage is of.
pub fn percent_bars(id: &str, title: &str, rows: &[(String, Option<u8>, String)]) -> Markup {
    let row_h = 28;
    let label_w = 150;
    let h = (rows.len() as i64 * row_h).max(row_h);
    let plot_w = W - label_w - 50;
    let desc = rows
        .iter()
        .map(|(name, p, _)| match p {
            Some(p) => format!("{name} {p}%"),
            None => format!("{name} too few orders"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    html! {
        figure.chart id=(id) {
            svg viewBox=(format!("0 0 {W} {h}")) role="img" aria-labelledby=(format!("{id}-t {id}-d")) {
                title id=(format!("{id}-t")) { (title) }
                desc id=(format!("{id}-d")) { (if desc.is_empty() { "No orders yet.".to_string() } else { desc }) }
                @for (i, (name, p, note)) in rows.iter().enumerate() {
                    @let y = i as i64 * row_h;
                    g {
                        title { (name) ": " @if let Some(p) = p { (p) "%" } @else { "new" } " (" (note) ")" }
                        text.tick x="0" y=(y + 18) { (name) }
                        rect.track x=(label_w) y=(y + 6) width=(plot_w) height="16" {}
                        @if let Some(p) = p {
                            rect.coded x=(label_w) y=(y + 6) width=(plot_w * i64::from(*p) / 100) height="16" {}
                        }
                        text.tick x=(W) y=(y + 18) text-anchor="end" { @if let Some(p) = p { (p) "%" } @else { "new" } }
                    }
                }
            }
            details {
                summary { "The numbers" }
                div.scroll {
                    table {
                        thead { tr { th { "Source" } th { "Got a code" } th { "Of" } } }
                        tbody {
                            @for (name, p, note) in rows {
                                tr { td { (name) } td { @if let Some(p) = p { (p) "%" } @else { "new" } } td { (note) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_rounds_up_to_one_two_or_five() {
        assert_eq!(scale_top(1), 1);
        assert_eq!(scale_top(3), 5);
        assert_eq!(scale_top(7), 10);
        assert_eq!(scale_top(120), 200);
        assert_eq!(scale_top(5000), 5000);
    }

    #[test]
    fn a_chart_says_its_numbers_in_words_and_in_a_table() {
        let labels = vec!["12-06".to_string(), "12-07".to_string()];
        let series = [
            Series {
                name: "completed",
                class: "completed",
                values: vec![3, 0],
            },
            Series {
                name: "expired",
                class: "expired",
                values: vec![1, 0],
            },
        ];
        let html =
            stacked_bars("orders", "Orders", &labels, &series, &|v| v.to_string()).into_string();
        assert!(html.contains("<title id=\"orders-t\">Orders</title>"));
        assert!(html.contains("2 bars from 12-06 to 12-07; 4 in all; the highest bar 4."));
        assert!(html.contains("<title>12-06: 3 completed, 1 expired</title>"));
        assert!(html.contains("<td>12-07</td><td>0</td><td>0</td>"));
        assert_eq!(html.matches("<rect class=\"completed\"").count(), 1);
    }
}
