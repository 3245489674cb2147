//! `loadgen render --dir DIR`: the charts of a loadtest run, drawn from its
//! report.json with plotters' SVG backend (no system fonts needed):
//! latency.svg (percentiles and the load generator's lag over time),
//! throughput.svg (answers and errors a second), queue.svg (queue length,
//! admitted sessions and admissions a second) and, when the run sampled
//! the replicas' memory, memory.svg.

use std::path::Path;

use plotters::prelude::*;
use report::{LoadReport, Sample};

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

pub fn run(dir: &Path) -> Result<(), String> {
    let report: LoadReport = report::read(&dir.join("report.json")).map_err(|e| e.to_string())?;
    let s = &report.samples;
    let title = |what: &str| format!("{} - {what}", report.scenario);
    let pick = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        s.iter()
            .filter_map(|x| f(x).map(|v| (x.second as f64, v)))
            .collect()
    };
    chart(
        &dir.join("latency.svg"),
        &title("latency over time (ms, from the scheduled send)"),
        "ms",
        vec![
            ("p50", BLUE, pick(&|x| x.p50_ms)),
            ("p90", GREEN, pick(&|x| x.p90_ms)),
            ("p99", RED, pick(&|x| x.p99_ms)),
            ("max", BLACK, pick(&|x| x.max_ms)),
            ("load generator lag p99", MAGENTA, pick(&|x| x.lag_p99_ms)),
        ],
    )?;
    chart(
        &dir.join("throughput.svg"),
        &title("throughput and errors a second"),
        "per second",
        vec![
            ("answered", BLUE, pick(&|x| Some(x.ok as f64))),
            ("errors", RED, pick(&|x| Some(x.errors as f64))),
        ],
    )?;
    chart(
        &dir.join("queue.svg"),
        &title("queue length and admissions"),
        "fans",
        vec![
            ("queued", BLUE, pick(&|x| x.queued.map(|v| v as f64))),
            (
                "admitted sessions",
                GREEN,
                pick(&|x| x.active.map(|v| v as f64)),
            ),
            (
                "admissions a second",
                RED,
                pick(&|x| x.admissions.map(|v| v as f64)),
            ),
        ],
    )?;
    let rss = pick(&|x| x.rss_kib.map(|v| v as f64 / 1024.0));
    if !rss.is_empty() {
        chart(
            &dir.join("memory.svg"),
            &title("replicas' resident memory (MiB)"),
            "MiB",
            vec![("RSS", BLUE, rss)],
        )?;
    }
    Ok(())
}

fn chart(path: &Path, caption: &str, unit: &str, series: Vec<Series<'_>>) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let x_max = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(x, _)| *x))
        .fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(_, y)| *y))
        .filter(|y| y.is_finite())
        .fold(1.0, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, (800, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut c = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_desc("second of the run")
        .y_desc(unit)
        .draw()
        .map_err(|e| err(&e))?;
    for (name, color, points) in series {
        if points.is_empty() {
            continue;
        }
        c.draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
