//! The HTML report of a run: one self-contained page (inline CSS and SVG, no script, no
//! network), a bar chart per table, the exact figures beside each bar.

use std::fmt::Write as _;

use crate::io::echo::EchoComparison;
use crate::io::idle::IdleResult;
use crate::report::Machine;
use crate::runner::{Comparison, Config};

const URINGO: &str = "#2a7ab0";
const TOKIO: &str = "#d08a2e";
const OTHER: &str = "#6a9a3a";
const BAR_WIDTH: f64 = 520.0;

/// The whole page.
pub(crate) fn report(
    machine: &Machine,
    cfg: &Config,
    tables: &[(&str, Vec<Comparison>)],
    echo: &[(&str, Vec<EchoComparison>)],
    idle: &[IdleResult],
) -> String {
    let mut body = String::new();
    for (mode, results) in tables {
        let rows: Vec<Row> = results
            .iter()
            .map(|c| Row {
                label: c.shape.to_owned(),
                bars: vec![
                    bar(c.a.name(), c.a_median().as_secs_f64() * 1e6),
                    bar(c.b.name(), c.b_median().as_secs_f64() * 1e6),
                ],
                note: format!("ratio {:.2}", c.ratio()),
            })
            .collect();
        section(
            &mut body,
            &format!("Scheduler and timer shapes ({mode})"),
            "median µs per iteration — shorter is faster",
            "µs",
            &rows,
        );
    }
    for (mode, results) in echo {
        let throughput: Vec<Row> = results
            .iter()
            .map(|c| {
                let (a, b) = c.rps();
                Row {
                    label: c.shape.to_owned(),
                    bars: vec![bar(c.a.name(), a), bar(c.b.name(), b)],
                    note: format!("ratio {:.2}", a / b),
                }
            })
            .collect();
        section(
            &mut body,
            &format!("Echo ping-pong throughput ({mode})"),
            "requests/s — longer is better; noisy on shared machines, see CPU below",
            "req/s",
            &throughput,
        );
        let cpu: Vec<Row> = results
            .iter()
            .zip(crate::io::floor_multiples(results))
            .map(|(c, (fa, fb))| {
                let (a, b) = c.cpu_us();
                let floor =
                    |m: Option<f64>| m.map_or_else(String::new, |m| format!(" ({m:.2}× floor)"));
                let mut note = format!("ratio {:.2}", a / b);
                if fa.is_some() || fb.is_some() {
                    let _ = write!(
                        note,
                        " · × floor {}, {}",
                        crate::io::floor_text(fa),
                        crate::io::floor_text(fb)
                    );
                }
                Row {
                    label: c.shape.to_owned(),
                    bars: vec![
                        bar(c.a.name(), a).with_extra(floor(fa)),
                        bar(c.b.name(), b).with_extra(floor(fb)),
                    ],
                    note,
                }
            })
            .collect();
        section(
            &mut body,
            &format!("Echo ping-pong server CPU per request ({mode})"),
            "server CPU µs per request from /proc — shorter is cheaper; × floor: over the \
             hand-written io_uring floor's (echo_floor, proxy_floor) in this run",
            "µs",
            &cpu,
        );
    }
    if !idle.is_empty() {
        let rows = vec![Row {
            label: format!("{} idle connections", idle[0].connections),
            bars: idle
                .iter()
                .map(|r| bar(r.server.name(), r.bytes_per_conn()))
                .collect(),
            note: String::new(),
        }];
        section(
            &mut body,
            "Idle connections",
            "server RSS growth per idle connection, bytes — shorter is leaner",
            "B",
            &rows,
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>uringo versus tokio</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.15em; margin-top: 2em; }}
.sub {{ color: #666; margin: -0.6em 0 0.8em; }}
svg text {{ font: 12px system-ui, sans-serif; }}
.legend span {{ display: inline-block; margin-right: 1.5em; }}
.legend i {{ display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.3em; vertical-align: -0.1em; }}
</style></head><body>
<h1>uringo versus tokio</h1>
<p>{machine}; {workers} workers; {rounds} rounds per peer, alternating, one runtime alive at a
time; medians. Ratios are uringo / tokio.</p>
<p class="legend"><span><i style="background:{URINGO}"></i>uringo</span><span><i style="background:{TOKIO}"></i>tokio</span><span><i style="background:{OTHER}"></i>other variant</span></p>
{body}
</body></html>
"#,
        machine = escape(&format!(
            "nproc={}, Linux {}, {}",
            machine.nproc, machine.kernel, machine.cpu
        )),
        workers = cfg.workers,
        rounds = cfg.rounds,
    )
}

struct Bar {
    name: String,
    value: f64,
    /// Shown after the figure (e.g. the multiple of the floor).
    extra: String,
}

impl Bar {
    fn with_extra(self, extra: String) -> Bar {
        Bar { extra, ..self }
    }
}

struct Row {
    label: String,
    bars: Vec<Bar>,
    note: String,
}

fn bar(name: &str, value: f64) -> Bar {
    Bar {
        name: name.to_owned(),
        value,
        extra: String::new(),
    }
}

fn colour(name: &str) -> &'static str {
    match name {
        "uringo" | "http-proxy" => URINGO,
        "tokio" | "http-proxy-tokio" => TOKIO,
        _ => OTHER,
    }
}

/// One chart: a group of horizontal bars per row, scaled to the largest value.
fn section(out: &mut String, title: &str, subtitle: &str, unit: &str, rows: &[Row]) {
    let max = rows
        .iter()
        .flat_map(|r| r.bars.iter().map(|b| b.value))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let (label_w, bar_h, gap) = (190.0, 16.0, 12.0);
    let height: f64 = rows
        .iter()
        .map(|r| r.bars.len() as f64 * (bar_h + 2.0) + gap)
        .sum::<f64>()
        + gap;
    let width = label_w + BAR_WIDTH + 260.0;
    let _ = writeln!(
        out,
        "<h2>{}</h2><p class=\"sub\">{}</p>\n<svg class=\"chart\" width=\"{width}\" height=\"{height}\" role=\"img\">",
        escape(title),
        escape(subtitle)
    );
    let mut y = gap;
    for row in rows {
        let group_h = row.bars.len() as f64 * (bar_h + 2.0);
        let _ = writeln!(
            out,
            "<text x=\"0\" y=\"{:.1}\">{}</text>",
            y + group_h / 2.0 + 4.0,
            escape(&row.label)
        );
        if !row.note.is_empty() {
            let _ = writeln!(
                out,
                "<text x=\"0\" y=\"{:.1}\" fill=\"#666\">{}</text>",
                y + group_h / 2.0 + 18.0,
                escape(&row.note)
            );
        }
        for b in &row.bars {
            let w = if b.value.is_finite() {
                (b.value / max * BAR_WIDTH).max(1.0)
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "<rect class=\"bar\" x=\"{label_w}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{}\"><title>{}: {} {unit}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{} {} {unit}{}</text>",
                colour(&b.name),
                escape(&b.name),
                figure(b.value),
                label_w + w + 6.0,
                y + bar_h - 3.0,
                escape(&b.name),
                figure(b.value),
                escape(&b.extra),
            );
            y += bar_h + 2.0;
        }
        y += gap;
    }
    out.push_str("</svg>\n");
}

fn figure(v: f64) -> String {
    if !v.is_finite() {
        "n/a".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_text_is_escaped() {
        let mut out = String::new();
        let rows = vec![Row {
            label: "a<b".into(),
            bars: vec![bar("uringo", 50.0), bar("tokio", 100.0)],
            note: "ratio 0.50".into(),
        }];
        section(&mut out, "t", "s", "µs", &rows);
        assert!(out.contains("a&lt;b"));
        assert!(out.contains(&format!("width=\"{:.1}\"", BAR_WIDTH / 2.0)));
        assert!(out.contains(&format!("width=\"{BAR_WIDTH:.1}\"")));
        assert_eq!(out.matches("class=\"bar\"").count(), 2);
        assert!(out.contains(URINGO) && out.contains(TOKIO));
    }
}
