//! The PNG next to BENCHMARKS.md: per scenario, grouped bars of every target's median elapsed
//! time and peak RSS (log scales: GoBGP is two orders of magnitude slower than the rest).
//!
//! Text is drawn with plotters' `ab_glyph` backend from a TTF file read at run time (Debian's
//! fonts-dejavu-core by default), so nothing links against fontconfig or freetype.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::{Scenario, Summary};
use crate::targets::Kind;

fn color(k: Kind) -> RGBColor {
    match k {
        Kind::Sink => RGBColor(170, 170, 170),
        Kind::Nexthop => RGBColor(214, 39, 40),
        Kind::NexthopBare => RGBColor(240, 150, 150),
        Kind::Bird => RGBColor(31, 119, 180),
        Kind::Frr => RGBColor(44, 160, 44),
        Kind::Gobgp => RGBColor(255, 127, 14),
    }
}

/// Two significant digits, at least: 0.00035, 0.045, 2.6, 108.
fn short(v: f64) -> String {
    if v <= 0.0 {
        return "0".into();
    }
    let decimals = (1 - v.log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// Registers the font once per process.
fn load_font(font: &Path) -> Result<()> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let bytes =
            std::fs::read(font).map_err(|e| format!("read font {}: {e}", font.display()))?;
        let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font("sans-serif", style, leaked)
                .map_err(|_| format!("{} is not a usable TTF font", font.display()))?;
        }
        Ok(())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Writes the plot to `path`.
pub fn plot(
    path: &Path,
    font: &Path,
    sums: &BTreeMap<(Scenario, Kind), Summary>,
    title: &str,
) -> Result<()> {
    load_font(font)?;
    let mut scenarios: Vec<Scenario> = sums.keys().map(|(s, _)| *s).collect();
    scenarios.dedup();
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| sums.keys().any(|(_, x)| x == k))
        .collect();
    if scenarios.is_empty() || kinds.is_empty() {
        return Err(anyhow!("nothing to plot"));
    }
    let root = BitMapBackend::new(path, (1500, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (head, body) = root.split_vertically(40);
    head.draw(&Text::new(
        title.to_string(),
        (20, 10),
        ("sans-serif", 20).into_font().style(FontStyle::Bold),
    ))
    .map_err(|e| anyhow!("{e}"))?;
    let (left, right) = body.split_horizontally(750);
    panel(
        &left,
        "Elapsed until the monitor holds P×N routes (s, median, log)",
        &scenarios,
        &kinds,
        sums,
        |_, s| s.elapsed,
    )?;
    let targets: Vec<Kind> = kinds.iter().copied().filter(|k| k.is_target()).collect();
    panel(
        &right,
        "Peak RSS of the target (MB, median, log)",
        &scenarios,
        &targets,
        sums,
        |k, s| {
            if k.is_target() {
                s.peak_rss.map(|b| b / 1_048_576.0)
            } else {
                None
            }
        },
    )?;
    root.present()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    scenarios: &[Scenario],
    kinds: &[Kind],
    sums: &BTreeMap<(Scenario, Kind), Summary>,
    value: impl Fn(Kind, &Summary) -> Option<f64>,
) -> Result<()> {
    let vals: Vec<f64> = sums
        .iter()
        .filter_map(|((_, k), s)| value(*k, s))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = vals.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().cloned().fold(0.0, f64::max);
    let (lo, hi) = if vals.is_empty() {
        (0.01, 1.0)
    } else {
        // A bar just above the axis would be invisible: keep a factor 2 below the smallest.
        let mut floor = 10f64.powf(lo.log10().floor());
        if lo / floor < 2.0 {
            floor /= 10.0;
        }
        (floor, 10f64.powf(hi.log10().ceil()).max(floor * 10.0))
    };
    let n = scenarios.len();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, (lo..hi).log_scale())
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| short(*v))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let width = 0.8 / kinds.len() as f64;
    for (ki, k) in kinds.iter().enumerate() {
        let c = color(*k);
        let mut bars = Vec::new();
        let mut labels = Vec::new();
        for (si, sc) in scenarios.iter().enumerate() {
            let Some(v) = sums.get(&(*sc, *k)).and_then(|s| value(*k, s)) else {
                continue;
            };
            let x0 = si as f64 + 0.1 + ki as f64 * width;
            bars.push(Rectangle::new(
                [(x0, lo), (x0 + width * 0.9, v.max(lo))],
                c.filled(),
            ));
            labels.push((x0 + width * 0.45, v.max(lo), short(v)));
        }
        chart
            .draw_series(bars)
            .map_err(|e| anyhow!("{e}"))?
            .label(k.label())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], c.filled()));
        let style = TextStyle::from(("sans-serif", 11).into_font()).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Bottom,
            ),
        );
        chart
            .draw_series(
                labels
                    .into_iter()
                    .map(|(x, y, t)| Text::new(t, (x, y), style.clone())),
            )
            .map_err(|e| anyhow!("{e}"))?;
    }
    // Scenario names under each group.
    let style = TextStyle::from(("sans-serif", 14).into_font()).pos(
        plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ),
    );
    for (si, sc) in scenarios.iter().enumerate() {
        // Backend pixels are absolute; the area draws relative to its own corner.
        let (px, py) = chart.backend_coord(&(si as f64 + 0.5, lo));
        let (bx, by) = area.get_base_pixel();
        area.draw(&Text::new(
            sc.label(),
            (px - bx, py - by + 8),
            style.clone(),
        ))
        .map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
