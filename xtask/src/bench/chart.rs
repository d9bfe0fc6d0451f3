//! The bench's chart: seconds against database size, ours beside the
//! baseline, as a small SVG written by hand.
use std::fmt::Write as _;

use super::Pair;

/// Seconds against database size (both on log scales), ours as solid lines
/// and the baseline dashed, one colour per command and shape. Plain SVG text:
/// no plotting library to build.
pub(super) fn chart(pairs: &[Pair]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 420.0;
    const PAD: f64 = 60.0;
    let sized: Vec<&Pair> = pairs.iter().filter(|p| p.command != "post-check").collect();
    let (xs, ys): (Vec<f64>, Vec<f64>) = sized
        .iter()
        .flat_map(|p| [(p.database_mib, p.ours_median_s), (p.database_mib, p.baseline_median_s)])
        .map(|(x, y)| (x.max(1e-3).log10(), y.max(1e-3).log10()))
        .unzip();
    let range = |v: &[f64]| {
        let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        if v.is_empty() {
            (0.0, 1.0)
        } else if hi - lo < 1e-9 {
            (lo - 0.5, hi + 0.5)
        } else {
            (lo, hi)
        }
    };
    let ((x0, x1), (y0, y1)) = (range(&xs), range(&ys));
    let px = |mib: f64| PAD + (mib.max(1e-3).log10() - x0) / (x1 - x0) * (W - 2.0 * PAD);
    let py = |s: f64| H - PAD - (s.max(1e-3).log10() - y0) / (y1 - y0) * (H - 2.0 * PAD);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{PAD}\" y=\"20\" font-size=\"14\">median seconds against database MiB (log-log); solid: xtask, dashed: runbook</text>\n\
         <line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{}\" stroke=\"black\"/>\n",
        H - PAD,
        W - PAD,
        H - PAD,
        H - PAD
    );
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
    let mut series: Vec<(String, Vec<&Pair>)> = Vec::new();
    for p in &sized {
        let key = format!("{} ({})", p.command, p.shape);
        match series.iter_mut().find(|(k, _)| *k == key) {
            Some((_, points)) => points.push(p),
            None => series.push((key, vec![p])),
        }
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let ours: fn(&Pair) -> f64 = |p| p.ours_median_s;
        let baseline: fn(&Pair) -> f64 = |p| p.baseline_median_s;
        for (dash, value) in [("", ours), (" stroke-dasharray=\"5,4\"", baseline)] {
            let coords: Vec<String> = points
                .iter()
                .map(|p| format!("{:.1},{:.1}", px(p.database_mib), py(value(p))))
                .collect();
            let _ = writeln!(
                svg,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
                coords.join(" ")
            );
            for c in &coords {
                let (x, y) = c.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(svg, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>");
            }
        }
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
            W - 250.0,
            PAD + 16.0 * i as f64,
            crate::report::xml(name)
        );
    }
    for p in &sized {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(p.database_mib),
            H - PAD + 16.0,
            p.size
        );
    }
    svg.push_str("</svg>\n");
    svg
}
