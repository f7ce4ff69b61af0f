//! `migrate plot`: the back-fill of chosen series, drawn from the output alone. The upper
//! panel shows the values over `time_value` as they looked at several as-of dates (one line
//! per date, the newest darkest); the lower one every revision's size by its lag.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use chrono::NaiveDate;
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::prelude::*;
use polars::prelude::*;

use crate::asof::Output;
use crate::diff::{key_exprs, read_partition};
use crate::epiweek::{date_from_yyyymmdd, Epiweek};
use crate::events::read_events;
use crate::lag_view::at_lag;
use crate::partition::file_stem;
use crate::replay::apply;
use crate::row_filter::RowFilter;

/// At most this many as-of dates are drawn when none are chosen.
const DEFAULT_LINES: usize = 8;

pub struct PlotRequest {
    pub out: PathBuf,
    pub source: String,
    pub signal: String,
    pub geo_values: Vec<String>,
    /// Dates to draw the series as of (YYYYMMDD); empty: up to 8 backups, evenly spread,
    /// or with `lags` the last backup (the latest values).
    pub asof: Vec<String>,
    /// Lags to draw the series at (see `lag_view`).
    pub lags: Vec<i64>,
    pub to: PathBuf,
}

/// What was drawn.
#[derive(Debug, PartialEq, Eq)]
pub struct Drawn {
    pub lines: usize,
    pub revisions: usize,
}

/// A series as of one date: (day of `time_value`, value) per geo.
struct Line {
    asof: String,
    geo: String,
    points: Vec<(i32, f64)>,
}

/// A series at one lag, per geo.
struct LagLine {
    lag: i64,
    geo: String,
    points: Vec<(i32, f64)>,
}

pub fn plot(request: &PlotRequest) -> Result<Drawn> {
    let output = Output::open(&request.out)?;
    let layout = &output.layout;
    let names: Vec<&str> = layout.names().collect();
    let (time_value, time_type) = (names[layout.time_value], names[layout.time_type]);
    if !names.contains(&"signal") || !names.contains(&"geo_value") || !names.contains(&"value") {
        bail!("plot needs `signal`, `geo_value` and `value` columns");
    }
    let asof = match (request.asof.is_empty(), request.lags.is_empty()) {
        (true, false) => output.dates.last().cloned().into_iter().collect(),
        _ => chosen_dates(&output.dates, &request.asof)?,
    };
    let stem = file_stem(&request.source);
    let scratch = output.scratch()?;
    let wanted = col("signal")
        .cast(DataType::String)
        .eq(lit(request.signal.as_str()))
        .and(
            request
                .geo_values
                .iter()
                .map(|g| col("geo_value").cast(DataType::String).eq(lit(g.as_str())))
                .fold(lit(false), |any, m| any.or(m)),
        );
    let mut state = read_partition(None, layout)?;
    let mut lines = Vec::new();
    let mut revisions: Vec<(i64, f64)> = Vec::new();
    for date in output.dates.iter().filter(|d| **d <= asof[asof.len() - 1]) {
        let (issues, removals) = output.read(date, &stem, scratch.path())?;
        let chosen = issues.clone().lazy().filter(wanted.clone()).collect()?;
        revisions.extend(revisions_of(&chosen, &state, layout)?);
        state = apply(state, &issues, &removals, layout)?;
        if asof.contains(date) {
            let rows = state
                .clone()
                .lazy()
                .filter(wanted.clone())
                .select([
                    col("geo_value").cast(DataType::String),
                    col(time_type).cast(DataType::String),
                    col(time_value),
                    col("value"),
                ])
                .sort([time_value], SortMultipleOptions::default())
                .collect()?;
            for geo in &request.geo_values {
                lines.push(Line {
                    asof: date.clone(),
                    geo: geo.clone(),
                    points: points_of(&rows, geo)?,
                });
            }
        }
    }
    let lag_lines = lag_lines(&output, request, &stem, scratch.path())?;
    let no_points = |points: &Vec<(i32, f64)>| points.is_empty();
    if lines.iter().map(|l| &l.points).all(no_points)
        && lag_lines.iter().map(|l| &l.points).all(no_points)
    {
        bail!(
            "no rows of source {}, signal {} and geo {} in the output",
            request.source,
            request.signal,
            request.geo_values.join(",")
        );
    }
    draw(&request.to, request, &lines, &lag_lines, &revisions)?;
    Ok(Drawn {
        lines: lines.len() + lag_lines.len(),
        revisions: revisions.len(),
    })
}

/// The series at each asked lag, per geo, from every backup of the output.
fn lag_lines(
    output: &Output,
    request: &PlotRequest,
    stem: &str,
    scratch: &Path,
) -> Result<Vec<LagLine>> {
    if request.lags.is_empty() {
        return Ok(Vec::new());
    }
    let layout = &output.layout;
    let names: Vec<&str> = layout.names().collect();
    let (time_value, time_type) = (names[layout.time_value], names[layout.time_type]);
    let filter = RowFilter::default()
        .one_of("signal", std::slice::from_ref(&request.signal))
        .one_of("geo_value", &request.geo_values);
    let events = read_events(output, stem, &output.dates, &filter, scratch)?;
    let mut lines = Vec::new();
    for &lag in &request.lags {
        let rows = at_lag(&events, layout, lag)?
            .rows
            .lazy()
            .select([
                col("geo_value").cast(DataType::String),
                col(time_type).cast(DataType::String),
                col(time_value),
                col("value"),
            ])
            .sort([time_value], SortMultipleOptions::default())
            .collect()?;
        for geo in &request.geo_values {
            lines.push(LagLine {
                lag,
                geo: geo.clone(),
                points: points_of(&rows, geo)?,
            });
        }
    }
    Ok(lines)
}

/// The as-of dates to draw: the chosen ones (each must be a backup), else up to
/// `DEFAULT_LINES` backups spread evenly, the last included.
fn chosen_dates(dates: &[String], chosen: &[String]) -> Result<Vec<String>> {
    if dates.is_empty() {
        bail!("the output has no backups");
    }
    if !chosen.is_empty() {
        let mut sorted = chosen.to_vec();
        sorted.sort();
        for date in &sorted {
            if !dates.contains(date) {
                bail!("--asof {date} is not a backup date of the output");
            }
        }
        return Ok(sorted);
    }
    let n = dates.len().min(DEFAULT_LINES);
    Ok((0..n)
        .map(|i| {
            dates[(dates.len() - 1) - (n - 1 - i) * (dates.len() - 1) / (n - 1).max(1)].clone()
        })
        .collect())
}

/// Revisions among `issues` (rows whose key is in `state` already): (lag, new - old value).
fn revisions_of(
    issues: &DataFrame,
    state: &DataFrame,
    layout: &crate::layout::Layout,
) -> Result<Vec<(i64, f64)>> {
    let keys = key_exprs(layout);
    let joined = issues
        .clone()
        .lazy()
        .join(
            state.clone().lazy().select(
                keys.iter()
                    .cloned()
                    .chain([col("value").alias("value__before")])
                    .collect::<Vec<_>>(),
            ),
            keys.clone(),
            keys,
            JoinArgs::new(JoinType::Inner),
        )
        .select([
            col("lag"),
            (col("value") - col("value__before")).alias("delta"),
        ])
        .collect()?;
    let lag = joined.column("lag")?.i64()?;
    let delta = joined.column("delta")?.f64()?;
    Ok((0..joined.height())
        .filter_map(|i| Some((lag.get(i)?, delta.get(i)?)))
        .collect())
}

/// A geo's points as (days since the common era of `time_value`'s day or epiweek, value).
fn points_of(rows: &DataFrame, geo: &str) -> Result<Vec<(i32, f64)>> {
    let geos = rows.column("geo_value")?.str()?;
    let kinds = rows.column(rows.get_column_names()[1].as_str())?.str()?;
    let times = rows.column(rows.get_column_names()[2].as_str())?.i64()?;
    let values = rows.column("value")?.f64()?;
    let mut points = Vec::new();
    for i in 0..rows.height() {
        let (Some(g), Some(kind), Some(time), Some(value)) =
            (geos.get(i), kinds.get(i), times.get(i), values.get(i))
        else {
            continue;
        };
        if g != geo {
            continue;
        }
        let day = match kind {
            "week" => Epiweek::from_yyyyww(time).map(|w| w.start()),
            _ => date_from_yyyymmdd(time),
        };
        if let Some(day) = day {
            points.push((chrono::Datelike::num_days_from_ce(&day), value));
        }
    }
    Ok(points)
}

fn bounds<T: Copy + PartialOrd>(values: impl Iterator<Item = T>) -> Option<(T, T)> {
    values.fold(None, |b, v| match b {
        None => Some((v, v)),
        Some((lo, hi)) => Some((if v < lo { v } else { lo }, if v > hi { v } else { hi })),
    })
}

fn draw(
    path: &Path,
    request: &PlotRequest,
    lines: &[Line],
    lag_lines: &[LagLine],
    revisions: &[(i64, f64)],
) -> Result<()> {
    if path.extension().is_none_or(|e| e != "svg") {
        bail!("--to must name an .svg file");
    }
    let root = SVGBackend::new(path, (1000, 760)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (upper, lower) = root.split_vertically(470);
    let all_points = || {
        (lines.iter().map(|l| &l.points))
            .chain(lag_lines.iter().map(|l| &l.points))
            .flatten()
    };
    let (x0, x1) = bounds(all_points().map(|p| p.0)).expect("some points");
    let (y0, y1) = bounds(all_points().map(|p| p.1)).expect("some points");
    let pad = ((y1 - y0) * 0.08).max(1e-9);
    let day_label = |d: &i32| {
        NaiveDate::from_num_days_from_ce_opt(*d)
            .map_or(String::new(), |d| d.format("%Y-%m-%d").to_string())
    };
    let mut chart = ChartBuilder::on(&upper)
        .caption(
            format!(
                "{} {} {}: value as of each backup (newest darkest){}",
                request.source,
                request.signal,
                request.geo_values.join(","),
                match lag_lines.is_empty() {
                    true => String::new(),
                    false => ", dashed: at each lag".to_string(),
                }
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1.max(x0 + 1), (y0 - pad)..(y1 + pad))
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("time_value")
        .y_desc("value")
        .x_label_formatter(&day_label)
        .x_labels(8)
        .draw()
        .map_err(|e| fail(&e))?;
    let dates: Vec<&String> = {
        let mut d: Vec<&String> = lines.iter().map(|l| &l.asof).collect();
        d.dedup();
        d
    };
    for line in lines {
        let rank = dates.iter().position(|d| **d == line.asof).unwrap_or(0);
        // From light (oldest) to dark (newest) blue.
        let shade = if dates.len() > 1 {
            rank as f64 / (dates.len() - 1) as f64
        } else {
            1.0
        };
        let color = RGBColor(
            (200.0 * (1.0 - shade)) as u8,
            (200.0 * (1.0 - shade)) as u8,
            (255.0 - 120.0 * shade) as u8,
        );
        let series = chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?;
        // One legend entry per as-of date: the geos of a date share its colour.
        if line.geo == request.geo_values[0] {
            series
                .label(format!("as of {}", line.asof))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
    }
    draw_lag_lines(&mut chart, request, lag_lines).map_err(|e| fail(&e))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| fail(&e))?;

    let (l0, l1) = bounds(revisions.iter().map(|r| r.0)).unwrap_or((0, 1));
    let (d0, d1) = bounds(revisions.iter().map(|r| r.1)).unwrap_or((-1.0, 1.0));
    let dpad = ((d1 - d0) * 0.1).max(0.1);
    let mut chart = ChartBuilder::on(&lower)
        .caption("revision size (new - old value) by lag", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d((l0 - 1)..(l1 + 1), (d0 - dpad)..(d1 + dpad))
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("lag")
        .y_desc("revision")
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(
            revisions
                .iter()
                .map(|&(lag, delta)| Circle::new((lag, delta), 4, RED.filled())),
        )
        .map_err(|e| fail(&e))?;
    drop(chart);
    root.present().map_err(|e| fail(&e))
}

/// The series at each lag as dashed lines, a colour per lag, one legend entry per lag.
fn draw_lag_lines<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordi32, RangedCoordf64>>,
    request: &PlotRequest,
    lag_lines: &[LagLine],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const LAG_COLOURS: [RGBColor; 6] = [
        RGBColor(230, 97, 1),
        RGBColor(27, 158, 119),
        RGBColor(217, 95, 2),
        RGBColor(117, 112, 179),
        RGBColor(231, 41, 138),
        RGBColor(102, 166, 30),
    ];
    for line in lag_lines {
        let rank = request
            .lags
            .iter()
            .position(|l| *l == line.lag)
            .unwrap_or(0);
        let colour = LAG_COLOURS[rank % LAG_COLOURS.len()];
        let series = chart.draw_series(DashedLineSeries::new(
            line.points.iter().copied(),
            6,
            4,
            colour.stroke_width(2),
        ))?;
        if line.geo == request.geo_values[0] {
            series
                .label(format!("lag {}", line.lag))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dates_spread_evenly_and_end_with_the_last() {
        let dates: Vec<String> = (1..=20).map(|d| format!("202006{d:02}")).collect();
        let chosen = chosen_dates(&dates, &[]).unwrap();
        assert_eq!(chosen.len(), 8);
        assert_eq!(chosen.last().unwrap(), "20200620");
        assert_eq!(chosen.first().unwrap(), "20200601");
        assert!(chosen.windows(2).all(|w| w[0] < w[1]));
        let few: Vec<String> = dates[..3].to_vec();
        assert_eq!(chosen_dates(&few, &[]).unwrap(), few);
        assert!(chosen_dates(&dates, &["20200701".into()]).is_err());
    }
}
