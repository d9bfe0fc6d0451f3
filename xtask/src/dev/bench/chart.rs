//! The bench's chart: seconds against database size, ours beside the
//! baseline, as a small SVG written by hand (no plotting library to build).
use std::fmt::Write as _;

use super::Pair;
use crate::cli::render::xml;

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 290.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/// Median seconds against database MiB, both on log scales: one colour per
/// command and shape, solid for ours, dashed for the runbook's commands.
pub(super) fn chart(pairs: &[Pair]) -> String {
    let sized: Vec<&Pair> = pairs.iter().filter(|p| p.command != "post-check").collect();
    let frame = Frame::of(&sized);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"14\">median seconds against database size (log-log); solid: xtask, dashed: runbook</text>\n"
    );
    frame.axes(&mut svg, &sized);
    // One series per command and shape, and its legend entry on the right.
    let mut series: Vec<(String, Vec<&Pair>)> = Vec::new();
    for p in &sized {
        let key = format!("{} ({})", p.command, p.shape);
        match series.iter_mut().find(|(k, _)| *k == key) {
            Some((_, points)) => points.push(p),
            None => series.push((key, vec![p])),
        }
    }
    for (i, (name, points)) in series.iter().enumerate() {
        frame.series(&mut svg, i, name, points);
    }
    svg.push_str("</svg>\n");
    svg
}

/// The plot's area and the log ranges it maps onto it.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn of(sized: &[&Pair]) -> Frame {
        let xs: Vec<f64> = sized.iter().map(|p| log(p.database_mib)).collect();
        let ys: Vec<f64> =
            sized.iter().flat_map(|p| [log(p.ours_median_s), log(p.baseline_median_s)]).collect();
        let (x0, x1) = span(&xs);
        Frame { x0, x1, y0: span(&ys).0.floor(), y1: span(&ys).1.ceil() }
    }

    fn px(&self, mib: f64) -> f64 {
        LEFT + (log(mib) - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, s: f64) -> f64 {
        let plot_h = HEIGHT - TOP - BOTTOM;
        TOP + plot_h - (log(s) - self.y0) / (self.y1 - self.y0) * plot_h
    }

    /// Axes, with a tick at each power of ten of seconds and at each size.
    fn axes(&self, svg: &mut String, sized: &[&Pair]) {
        let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>"
        );
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\" stroke=\"black\"/>"
        );
        let mut power = self.y0;
        while power <= self.y1 + 1e-9 {
            let y = self.py(10f64.powf(power));
            let _ = writeln!(
                svg,
                "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>"
            );
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{} s</text>",
                LEFT - 6.0,
                y + 4.0,
                10f64.powf(power)
            );
            power += 1.0;
        }
        let mut sizes: Vec<(&str, f64)> = Vec::new();
        for p in sized {
            if !sizes.iter().any(|(label, _)| *label == p.size) {
                sizes.push((&p.size, p.database_mib));
            }
        }
        for (label, mib) in &sizes {
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                self.px(*mib),
                bottom + 18.0,
                xml(label)
            );
        }
    }

    /// Series `i`: ours solid, the baseline dashed, and its legend entry.
    fn series(&self, svg: &mut String, i: usize, name: &str, points: &[&Pair]) {
        let colour = COLOURS[i % COLOURS.len()];
        let ours: fn(&Pair) -> f64 = |p| p.ours_median_s;
        let baseline: fn(&Pair) -> f64 = |p| p.baseline_median_s;
        for (dash, value) in [("", ours), (" stroke-dasharray=\"5,4\"", baseline)] {
            let coords: Vec<(f64, f64)> =
                points.iter().map(|p| (self.px(p.database_mib), self.py(value(p)))).collect();
            let line: Vec<String> = coords.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                svg,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
                line.join(" ")
            );
            for (x, y) in coords {
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>"
                );
            }
        }
        let y = TOP + 16.0 * i as f64;
        let x = WIDTH - RIGHT + 20.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            x + 18.0
        );
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
            x + 24.0,
            y + 4.0,
            xml(name)
        );
    }
}

fn log(value: f64) -> f64 {
    value.max(1e-3).log10()
}

/// The range of values, widened when there is only one.
fn span(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match (lo.is_finite(), hi - lo < 1e-9) {
        (false, _) => (0.0, 1.0),
        (true, true) => (lo - 0.5, hi + 0.5),
        (true, false) => (lo, hi),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(command: &str, size: &str, mib: f64, ours: f64, baseline: f64) -> Pair {
        Pair {
            command: command.into(),
            size: size.into(),
            shape: "rows".into(),
            database_mib: mib,
            ours_median_s: ours,
            ours_min_s: ours,
            ours_max_s: ours,
            baseline_median_s: baseline,
            baseline_min_s: baseline,
            baseline_max_s: baseline,
            ratio: ours / baseline,
            target: None,
            ours_peak_mib: 10.0,
            ours_peak_with_children_mib: 10.0,
            ours_s_per_mib: ours / mib,
            ours_ok: true,
            baseline_ok: true,
            ours_runs_s: vec![ours],
            baseline_runs_s: vec![baseline],
            note: None,
        }
    }

    #[test]
    fn draws_one_solid_and_one_dashed_line_per_series() {
        let pairs = [
            pair("backup", "1MiB", 1.0, 0.02, 0.02),
            pair("backup", "1GiB", 1024.0, 1.6, 1.3),
            pair("post-check", "fixture", 0.8, 0.6, 4.2),
        ];
        let svg = chart(&pairs);
        // To look at a chart of a real report: XTASK_CHART_FROM=report.json
        // XTASK_CHART_SAMPLE=out.svg cargo test chart.
        if let Some(path) = std::env::var_os("XTASK_CHART_SAMPLE") {
            let svg = match std::env::var_os("XTASK_CHART_FROM") {
                Some(report) => {
                    let report: serde_json::Value =
                        serde_json::from_str(&xtask_fs::outside::read_to_string(report).unwrap())
                            .unwrap();
                    chart(&serde_json::from_value::<Vec<Pair>>(report["pairs"].clone()).unwrap())
                }
                None => svg.clone(),
            };
            xtask_fs::unconfined::write(path, svg).unwrap();
        }
        assert_eq!(svg.matches("<polyline").count(), 2, "post-check is not drawn against size");
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert!(svg.contains(">backup (rows)</text>") && svg.contains(">1GiB</text>"));
    }
}
