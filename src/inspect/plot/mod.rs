//! `migrate plot`: the back-fill of chosen series, drawn from the output alone. The upper
//! panel shows the values over `time_value` as they looked at several as-of dates (one
//! colour per geo, one shade of it per date, the newest a full-colour band beneath the
//! older lines); the lower one the revisions' sizes by lag, as density (darker where more)
//! with their percentiles per lag.
//! The look (colours, shades, legend) is in `style.rs`, the revision grid in
//! `revisions.rs`.

mod revisions;
pub mod style;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use chrono::NaiveDate;
use plotters::coord::Shift;
use plotters::prelude::*;
use polars::prelude::*;

use crate::inspect::events::read_events;
use crate::inspect::lag_view::at_lag;
use crate::inspect::output::Output;
use crate::inspect::replay::apply;
use crate::inspect::row_filter::RowFilter;
use crate::inspect::sources::{check_signals, check_sources};
use crate::stages::diff::{key_exprs, read_partition};
use crate::stages::extract::file_stem;
use crate::values::epiweek::{date_from_yyyymmdd, Epiweek};
use revisions::{cells, lags_per_column, quantiles, size_range, Revision};
use style::{
    count, geo_color, number_label, shade, shade_width, text_width, Entry, Legend, Swatch,
};

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

/// A series as of one date: (day of `time_value`, value) for one geo.
struct Line {
    asof: String,
    /// Index of the geo in the request.
    geo: usize,
    points: Vec<(i32, f64)>,
}

/// A series at one lag (see `lag_view`) for one geo.
struct LagLine {
    lag: i64,
    /// Index of the geo in the request.
    geo: usize,
    points: Vec<(i32, f64)>,
}

/// What the series hold, for the axes' names: `day`, `week`, or both.
#[derive(Default)]
struct TimeTypes(BTreeSet<String>);

impl TimeTypes {
    /// What `unit` counts: days, epiweeks, or both.
    fn unit(&self) -> &'static str {
        let week = self.0.contains("week");
        match (week, self.0.iter().any(|t| t != "week")) {
            (true, false) => "epiweeks",
            (true, true) => "days; epiweeks for weekly rows",
            _ => "days",
        }
    }
}

/// The names of `time_value` and `time_type`: the axis of a plot is Epidata's time.
fn typed_time(layout: &crate::config::layout::Layout) -> Result<(&str, &str)> {
    match layout.time {
        crate::config::layout::Time::Typed {
            time_type,
            time_value,
        } => Ok((
            layout.columns[time_value].name.as_str(),
            layout.columns[time_type].name.as_str(),
        )),
        _ => bail!(
            "plot needs an integer time_value read with time_type (Epidata's time columns) \
             as its horizontal axis; this output has none"
        ),
    }
}

pub fn plot(request: &PlotRequest) -> Result<Drawn> {
    let output = Output::open(&request.out)?;
    let layout = &output.layout;
    let names: Vec<&str> = layout.names().collect();
    let (time_value, time_type) = typed_time(layout)?;
    if !names.contains(&"signal") || !names.contains(&"geo_value") || !names.contains(&"value") {
        bail!("plot needs `signal`, `geo_value` and `value` columns");
    }
    let asof = match (request.asof.is_empty(), request.lags.is_empty()) {
        (true, false) => output.dates.last().cloned().into_iter().collect(),
        _ => chosen_dates(&output.dates, &request.asof)?,
    };
    check_sources(&output, std::slice::from_ref(&request.source))?;
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
    let mut revisions = Vec::new();
    let mut time_types = TimeTypes::default();
    for date in output.dates.iter().filter(|d| **d <= asof[asof.len() - 1]) {
        let (issues, removals) = output.read(date, &stem, scratch.path())?;
        let chosen = issues.clone().lazy().filter(wanted.clone()).collect()?;
        revisions.extend(revisions_of(
            &chosen,
            &state,
            layout,
            request,
            &mut time_types,
        )?);
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
            for (index, geo) in request.geo_values.iter().enumerate() {
                lines.push(Line {
                    asof: date.clone(),
                    geo: index,
                    points: points_of(&rows, geo, &mut time_types)?,
                });
            }
        }
    }
    let lag_lines = lag_lines(&output, request, &stem, scratch.path(), &mut time_types)?;
    let no_points = |points: &Vec<(i32, f64)>| points.is_empty();
    if lines.iter().map(|l| &l.points).all(no_points)
        && lag_lines.iter().map(|l| &l.points).all(no_points)
    {
        let stems = [stem.clone()].into_iter().collect();
        check_signals(
            &output,
            &stems,
            std::slice::from_ref(&request.signal),
            scratch.path(),
        )?;
        bail!(
            "no rows of source {}, signal {} and geo {} in the output",
            request.source,
            request.signal,
            request.geo_values.join(",")
        );
    }
    let series = Series {
        lines: &lines,
        lag_lines: &lag_lines,
    };
    draw(&request.to, request, &series, &revisions, &time_types)?;
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
    time_types: &mut TimeTypes,
) -> Result<Vec<LagLine>> {
    if request.lags.is_empty() {
        return Ok(Vec::new());
    }
    let layout = &output.layout;
    let (time_value, time_type) = typed_time(layout)?;
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
        let mut empty = Vec::new();
        for (index, geo) in request.geo_values.iter().enumerate() {
            let points = points_of(&rows, geo, time_types)?;
            if points.is_empty() {
                empty.push(geo.as_str());
            }
            lines.push(LagLine {
                lag,
                geo: index,
                points,
            });
        }
        if !empty.is_empty() {
            let first = events
                .column("lag")?
                .as_materialized_series()
                .min::<i64>()?;
            tracing::warn!(
                "--lag {lag}: no row of {} {} for geo {} was issued within lag {lag}{}; its \
                 series is empty",
                request.source,
                request.signal,
                empty.join(","),
                match first {
                    Some(first) => format!(" (its earliest issue is at lag {first})"),
                    None => String::new(),
                }
            );
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

/// Revisions among `issues` (rows whose key is in `state` already) of a value that was and
/// is a number; notes the time types of the revised rows.
fn revisions_of(
    issues: &DataFrame,
    state: &DataFrame,
    layout: &crate::config::layout::Layout,
    request: &PlotRequest,
    time_types: &mut TimeTypes,
) -> Result<Vec<Revision>> {
    let (_, time_type) = typed_time(layout)?;
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
            col("geo_value").cast(DataType::String),
            col(time_type).cast(DataType::String).alias("time_type"),
            col("lag"),
            (col("value") - col("value__before")).alias("delta"),
        ])
        .collect()?;
    let geo = joined.column("geo_value")?.str()?;
    let kind = joined.column("time_type")?.str()?;
    let lag = joined.column("lag")?.i64()?;
    let delta = joined.column("delta")?.f64()?;
    let mut revisions = Vec::new();
    for i in 0..joined.height() {
        let (Some(geo), Some(lag), Some(delta)) = (geo.get(i), lag.get(i), delta.get(i)) else {
            continue;
        };
        let Some(geo) = request.geo_values.iter().position(|g| g == geo) else {
            continue;
        };
        time_types.0.extend(kind.get(i).map(str::to_string));
        revisions.push(Revision { geo, lag, delta });
    }
    Ok(revisions)
}

/// A geo's points as (days since the common era of `time_value`'s day or epiweek, value);
/// notes their time types.
fn points_of(rows: &DataFrame, geo: &str, time_types: &mut TimeTypes) -> Result<Vec<(i32, f64)>> {
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
        if !time_types.0.contains(kind) {
            time_types.0.insert(kind.to_string());
        }
        if let Some(day) = day {
            points.push((chrono::Datelike::num_days_from_ce(&day), value));
        }
    }
    Ok(points)
}

/// The drawing: the two panels on the left, their legends on the right.
const WIDTH: u32 = 1100;
const HEIGHT: u32 = 820;
const UPPER: u32 = 480;

/// The upper panel's lines: as of dates, and at lags.
struct Series<'a> {
    lines: &'a [Line],
    lag_lines: &'a [LagLine],
}

impl Series<'_> {
    fn points(&self) -> impl Iterator<Item = &(i32, f64)> {
        (self.lines.iter().map(|l| &l.points))
            .chain(self.lag_lines.iter().map(|l| &l.points))
            .flatten()
    }
}

fn draw(
    path: &Path,
    request: &PlotRequest,
    series: &Series,
    revisions: &[Revision],
    time_types: &TimeTypes,
) -> Result<()> {
    if path.extension().is_none_or(|e| e != "svg") {
        bail!("--to must name an .svg file");
    }
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot draw {}: {e}", path.display());
    let dates: Vec<&str> = (series.lines.iter())
        .map(|l| l.asof.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let values_legend = values_legend(request, &dates, series.lag_lines);
    let revisions_legend = revisions_legend(request, revisions);
    let legend_width = values_legend.width().max(revisions_legend.width()).max(150);
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (charts, legends) = root.split_horizontally(WIDTH - legend_width);
    let (upper, lower) = charts.split_vertically(UPPER);
    let (upper_legend, lower_legend) = legends.split_vertically(UPPER);
    draw_values(&upper, request, series, &dates, time_types).map_err(|e| fail(&e))?;
    values_legend
        .draw(&upper_legend.margin(40, 0, 0, 0))
        .map_err(|e| fail(&e))?;
    draw_revisions(&lower, request, revisions, time_types).map_err(|e| fail(&e))?;
    revisions_legend
        .draw(&lower_legend.margin(40, 0, 0, 0))
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

/// Opacity of the newest as-of line, the band the older lines are drawn over.
const NEWEST_OPACITY: f64 = 0.45;

/// At most this many ticks on the time axis.
const MAX_TICKS: usize = 10;

/// Ticks of the time axis from day `x0` to `x1` (days since the common era), on calendar
/// boundaries rather than wherever an even split falls: month starts (every 1, 2, 3, 6 or
/// 12 months, on months that step divides, so that quarters start on January, April, …)
/// when the span holds at least four; else the starts of epiweeks (Sundays, every 1, 2 or
/// 4); else days.
pub fn day_ticks(x0: i32, x1: i32) -> Vec<i32> {
    use chrono::Datelike;
    let day = |x: i32| NaiveDate::from_num_days_from_ce_opt(x);
    let days: Vec<NaiveDate> = (x0..=x1).filter_map(day).collect();
    let pick = |candidates: Vec<NaiveDate>,
                steps: &[usize],
                on_step: &dyn Fn(&NaiveDate, usize) -> bool| {
        steps.iter().find_map(|&step| {
            let chosen: Vec<i32> = (candidates.iter())
                .filter(|d| on_step(d, step))
                .map(|d| d.num_days_from_ce())
                .collect();
            (chosen.len() <= MAX_TICKS).then_some(chosen)
        })
    };
    let months: Vec<NaiveDate> = days.iter().copied().filter(|d| d.day() == 1).collect();
    if months.len() >= 4 {
        let on = |d: &NaiveDate, step: usize| (d.month0() as usize).is_multiple_of(step);
        if let Some(ticks) = pick(months.clone(), &[1, 2, 3, 6, 12], &on) {
            return ticks;
        }
        // Decades of data: every year's January, thinned.
        let years: Vec<i32> = months
            .iter()
            .filter(|d| d.month() == 1)
            .map(|d| d.num_days_from_ce())
            .collect();
        let step = years.len().div_ceil(MAX_TICKS).max(1);
        return years.into_iter().step_by(step).collect();
    }
    let sundays: Vec<NaiveDate> = (days.iter().copied())
        .filter(|d| d.weekday() == chrono::Weekday::Sun)
        .collect();
    if sundays.len() >= 3 {
        let first = sundays[0];
        let on = |d: &NaiveDate, step: usize| {
            ((*d - first).num_days() as usize / 7).is_multiple_of(step)
        };
        if let Some(ticks) = pick(sundays, &[1, 2, 4], &on) {
            return ticks;
        }
    }
    let step = days.len().div_ceil(MAX_TICKS).max(1);
    days.iter()
        .step_by(step)
        .map(|d| d.num_days_from_ce())
        .collect()
}

fn day_label(day: &i32) -> String {
    NaiveDate::from_num_days_from_ce_opt(*day)
        .map_or(String::new(), |d| d.format("%Y-%m-%d").to_string())
}

/// Geos whose shades the legend shows side by side.
const MAX_SWATCHES: usize = 4;

/// Colours of the series at lags, in the order the lags were asked: dark, and apart from
/// the geos' palette.
const LAG_COLOURS: [RGBColor; 4] = [
    RGBColor(20, 20, 20),
    RGBColor(102, 0, 153),
    RGBColor(0, 102, 102),
    RGBColor(153, 0, 51),
];

/// Dash lengths of the series at lags, by geo.
const DASHES: [u32; 3] = [10, 5, 2];

fn lag_colour(request: &PlotRequest, lag: i64) -> RGBColor {
    let rank = request.lags.iter().position(|l| *l == lag).unwrap_or(0);
    LAG_COLOURS[rank % LAG_COLOURS.len()]
}

/// Geos by colour, dates by shade, lags by their own colours (dashed).
fn values_legend(request: &PlotRequest, dates: &[&str], lag_lines: &[LagLine]) -> Legend {
    let geos = request.geo_values.len();
    let mut legend = Legend::default();
    legend.section(
        "geo",
        (request.geo_values.iter().enumerate())
            .map(|(g, geo)| Entry {
                swatches: vec![Swatch::Line {
                    color: geo_color(g),
                    width: 3,
                }],
                label: geo.clone(),
            })
            .collect(),
    );
    // A swatch per geo and date; past a few geos, one in grey stands for all.
    let swatch_geos: Vec<Option<usize>> = if geos <= MAX_SWATCHES {
        (0..geos).map(Some).collect()
    } else {
        vec![None]
    };
    legend.section(
        "as of (newest beneath)",
        (dates.iter().enumerate())
            .map(|(rank, date)| Entry {
                swatches: (swatch_geos.iter())
                    .map(|g| {
                        let color = shade(g.map_or(BLACK, geo_color), rank, dates.len());
                        let width = shade_width(rank, dates.len());
                        match rank + 1 == dates.len() && dates.len() > 1 {
                            true => Swatch::Band {
                                color,
                                width,
                                opacity: NEWEST_OPACITY,
                            },
                            false => Swatch::Line { color, width },
                        }
                    })
                    .collect(),
                label: date_from_yyyymmdd(date.parse().unwrap_or(0))
                    .map_or(date.to_string(), |d| d.format("%Y-%m-%d").to_string()),
            })
            .collect(),
    );
    if !lag_lines.is_empty() {
        legend.section(
            match request.geo_values.len() {
                1 => "dashed: at lag".to_string(),
                _ => format!(
                    "dashed: at lag (dashes: {})",
                    (request.geo_values.iter().zip(["long", "short", "dots"]))
                        .map(|(geo, dash)| format!("{geo} {dash}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            (request.lags.iter())
                .map(|&lag| Entry {
                    swatches: vec![Swatch::Line {
                        color: lag_colour(request, lag),
                        width: 2,
                    }],
                    label: format!("lag {lag}"),
                })
                .collect(),
        );
    }
    legend
}

/// The upper panel: each geo's values as of each date.
fn draw_values<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    request: &PlotRequest,
    series: &Series,
    dates: &[&str],
    time_types: &TimeTypes,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x0, x1) = bounds(series.points().map(|p| p.0)).expect("some points");
    let values: Vec<f64> = series.points().map(|p| p.1).collect();
    let range = size_range(&values, false);
    let pad = ((range.hi - range.lo) * 0.08).max(1e-9);
    let (y0, y1) = (range.lo - pad, range.hi + pad);
    let y_label = number_label(y0, y1, 10);
    let x_desc = match time_types.unit() {
        "epiweeks" => "time_value (epiweeks, drawn at their first day)",
        _ => "time_value",
    };
    let mut caption = format!(
        "{} {}: value as of each backup",
        request.source, request.signal
    );
    if range.outside > 0 {
        caption += &format!(
            " ({} points beyond the axis, at its edge)",
            count(range.outside)
        );
    }
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (style::FONT, style::TITLE_SIZE))
        .margin(10)
        // Half of a date label, so that the last one is not cut at the edge.
        .margin_right(text_width("2020-06-01", style::TEXT_SIZE) / 2 + 10)
        .x_label_area_size(48)
        .y_label_area_size(label_area(&y_label, y0, y1) + 30)
        .build_cartesian_2d(
            (x0..x1.max(x0 + 1)).with_key_points(day_ticks(x0, x1.max(x0 + 1))),
            y0..y1,
        )?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("value")
        .x_label_formatter(&day_label)
        .y_label_formatter(&y_label)
        .y_labels(10)
        .label_style((style::FONT, style::TEXT_SIZE))
        .axis_desc_style((style::FONT, style::TEXT_SIZE))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    // The newest first, underneath, as a wide translucent band; then the older ones, thin,
    // oldest first. On a real series most of the older lines coincide with the newest
    // (only the recent end is revised): drawn over them in bold, the newest hid them; the
    // band lets each thin line show inside it, and where they part, the back-fill.
    let mut ordered: Vec<&Line> = series.lines.iter().collect();
    let newest_first = |l: &&Line| {
        let rank = dates.iter().position(|d| *d == l.asof).unwrap_or(0);
        (rank + 1 != dates.len(), rank, l.geo)
    };
    ordered.sort_by_key(newest_first);
    for line in ordered {
        let rank = dates.iter().position(|d| *d == line.asof).unwrap_or(0);
        let color = shade(geo_color(line.geo), rank, dates.len());
        let opacity = match rank + 1 == dates.len() && dates.len() > 1 {
            true => NEWEST_OPACITY,
            false => 1.0,
        };
        let clamped = (line.points.iter()).map(|&(x, y)| (x, y.clamp(range.lo, range.hi)));
        chart.draw_series(LineSeries::new(
            clamped,
            color
                .mix(opacity)
                .stroke_width(shade_width(rank, dates.len())),
        ))?;
    }
    // Over the as-of lines: a lag's series for a geo is read against that geo's latest.
    for line in series.lag_lines {
        let clamped = (line.points.iter()).map(|&(x, y)| (x, y.clamp(range.lo, range.hi)));
        let colour = lag_colour(request, line.lag);
        // A colour per lag; the dashes tell the geos apart, longest for the first.
        let dash = DASHES[line.geo % DASHES.len()];
        chart.draw_series(DashedLineSeries::new(
            clamped,
            dash,
            4,
            colour.stroke_width(2),
        ))?;
    }
    Ok(())
}

/// Width of the labels of numbers from `lo` to `hi`.
fn label_area(label: &impl Fn(&f64) -> String, lo: f64, hi: f64) -> u32 {
    [lo, hi, (lo + hi) / 2.0]
        .iter()
        .map(|v| text_width(&label(v), style::TEXT_SIZE))
        .max()
        .unwrap_or(0)
}

/// Grid of the revision panel: columns of lags, rows of sizes.
const MAX_COLUMNS: usize = 120;
const MIN_LAGS: i64 = 10;
const ROWS: usize = 60;
/// Opacity of a cell of one revision, and of the fullest cell.
const OPACITY: (f64, f64) = (0.2, 0.9);
const QUANTILE_COLOR: RGBColor = RGBColor(40, 40, 40);

fn revisions_legend(request: &PlotRequest, revisions: &[Revision]) -> Legend {
    let (first, last) = bounds(revisions.iter().map(|r| r.lag)).unwrap_or((0, 1));
    let has_quantiles = !quantiles(revisions, lags_per_column(first, last, MAX_COLUMNS)).is_empty();
    let mut legend = Legend::default();
    let mut entries: Vec<Entry> = (request.geo_values.iter().enumerate())
        .filter(|(g, _)| revisions.iter().any(|r| r.geo == *g))
        .map(|(g, geo)| Entry {
            swatches: vec![
                Swatch::Mark {
                    color: geo_color(g),
                    opacity: OPACITY.0,
                },
                Swatch::Mark {
                    color: geo_color(g),
                    opacity: OPACITY.1,
                },
            ],
            label: format!("{geo}: few → many"),
        })
        .collect();
    if has_quantiles {
        entries.push(Entry {
            swatches: vec![Swatch::Line {
                color: QUANTILE_COLOR,
                width: 2,
            }],
            label: "median at each lag".into(),
        });
        entries.push(Entry {
            swatches: vec![Swatch::Line {
                color: QUANTILE_COLOR,
                width: 1,
            }],
            label: "10th and 90th percentiles".into(),
        });
    }
    legend.section("revisions", entries);
    legend
}

/// The lower panel: revisions by lag and size, as density, with percentiles per lag.
fn draw_revisions<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    request: &PlotRequest,
    revisions: &[Revision],
    time_types: &TimeTypes,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let deltas: Vec<f64> = revisions.iter().map(|r| r.delta).collect();
    let range = size_range(&deltas, true);
    let (first, last) = bounds(revisions.iter().map(|r| r.lag)).unwrap_or((0, 1));
    let lags = lags_per_column(first, last, MAX_COLUMNS);
    // The axis starts at lag 0 (or below, for rows dated after their backup) and spans
    // at least `MIN_LAGS`, so that a few revisions do not make a few huge marks.
    let axis_first = first.min(0);
    let last = (first + ((last - first) / lags + 1) * lags - 1).max(axis_first + MIN_LAGS - 1);
    let pad = ((range.hi - range.lo) * 0.05).max(1e-9);
    let (y0, y1) = (range.lo - pad, range.hi + pad);
    let y_label = number_label(y0, y1, 8);
    let mut caption = format!(
        "{} revisions of value by lag: new − old, darker where more",
        count(revisions.len())
    );
    if range.outside > 0 {
        caption += &format!(" ({} beyond the axis, at its edge)", count(range.outside));
    }
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (style::FONT, style::TITLE_SIZE - 2.0))
        .margin(10)
        .margin_right(20)
        .x_label_area_size(48)
        .y_label_area_size(label_area(&y_label, y0, y1) + 30)
        .build_cartesian_2d((axis_first as f64 - 0.5)..(last as f64 + 0.5), y0..y1)?;
    let whole_lags = |v: &f64| {
        if (v - v.round()).abs() < 1e-6 {
            format!("{}", v.round() as i64)
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc(format!("lag ({})", time_types.unit()))
        .y_desc("new − old value")
        .x_label_formatter(&whole_lags)
        .y_label_formatter(&y_label)
        .x_labels(((last - axis_first + 1) as usize).min(12))
        .y_labels(8)
        .label_style((style::FONT, style::TEXT_SIZE))
        .axis_desc_style((style::FONT, style::TEXT_SIZE))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(axis_first as f64 - 0.5, 0.0), (last as f64 + 0.5, 0.0)],
        BLACK.mix(0.4),
    )))?;
    let span = |lags: (i64, i64)| (lags.0 as f64 - 0.5, lags.1 as f64 + 0.5);
    let clamp = |v: f64| v.clamp(range.lo, range.hi);
    let quantiles = quantiles(revisions, lags);
    let cells = cells(revisions, range, lags, ROWS);
    let fullest = cells.iter().map(|c| c.count).max().unwrap_or(1);
    let geos = request.geo_values.len().max(1) as f64;
    chart.draw_series(cells.iter().map(|cell| {
        let (left, right) = span(cell.lags);
        // Side by side within a column, one slot per geo.
        let slot = (right - left) * 0.9 / geos;
        let left = left + (right - left) * 0.05 + cell.geo as f64 * slot;
        let opacity = OPACITY.0
            + (OPACITY.1 - OPACITY.0) * ((cell.count as f64).ln_1p() / (fullest as f64).ln_1p());
        Rectangle::new(
            [(left, cell.sizes.0), (left + slot, cell.sizes.1)],
            geo_color(cell.geo).mix(opacity).filled(),
        )
    }))?;
    // Over the marks, a step per column of lags: the median bold, the 10th and 90th
    // percentiles thin.
    chart.draw_series(quantiles.iter().flat_map(|q| {
        let (left, right) = span(q.lags);
        [(q.p50, 2), (q.p10, 1), (q.p90, 1)].map(|(value, width)| {
            let y = clamp(value);
            PathElement::new(
                vec![(left, y), (right, y)],
                QUANTILE_COLOR.stroke_width(width),
            )
        })
    }))?;
    Ok(())
}

fn bounds<T: Copy + PartialOrd>(values: impl Iterator<Item = T>) -> Option<(T, T)> {
    values.fold(None, |b, v| match b {
        None => Some((v, v)),
        Some((lo, hi)) => Some((if v < lo { v } else { lo }, if v > hi { v } else { hi })),
    })
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

    /// A history's worth of revisions (as many as the issue's 547 backups of one county
    /// had), drawn as a bounded number of marks.
    #[test]
    fn thousands_of_revisions_draw_as_a_bounded_grid() {
        let mut seed = 7u64;
        let mut random = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        // Lags mostly small, sizes shrinking with lag.
        let revisions: Vec<Revision> = (0..28_739)
            .map(|_| {
                let lag = (-(1.0 - random()).ln() * 40.0) as i64 + 1;
                let delta = (random() - 0.5) * 4.0 / (1.0 + lag as f64 / 10.0);
                Revision { geo: 0, lag, delta }
            })
            .collect();
        let lines: Vec<Line> = (0..8)
            .map(|d| Line {
                asof: format!("2021{:02}01", d + 1),
                geo: 0,
                points: (0..500)
                    .map(|t| (737_000 + t, (t as f64 / 50.0).sin() + d as f64 * 0.01))
                    .collect(),
            })
            .collect();
        let request = PlotRequest {
            out: PathBuf::new(),
            source: "doctor-visits".into(),
            signal: "smoothed_adj_cli".into(),
            geo_values: vec!["ca".into()],
            asof: Vec::new(),
            lags: Vec::new(),
            to: PathBuf::new(),
        };
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("many.svg");
        let mut types = TimeTypes::default();
        types.0.insert("day".into());
        let series = Series {
            lines: &lines,
            lag_lines: &[],
        };
        draw(&svg, &request, &series, &revisions, &types).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("28,739 revisions"));
        let rects = text.matches("<rect").count();
        assert!(
            rects <= MAX_COLUMNS * ROWS + MAX_COLUMNS + 20,
            "{rects} rectangles"
        );
        assert!(rects > 500, "{rects} rectangles: the density is not drawn");
        if let Some(keep) = std::env::var_os("MIGRATE_KEEP_PLOT") {
            std::fs::copy(&svg, keep).unwrap();
        }
    }
}

#[cfg(test)]
mod tick_tests {
    use super::day_ticks;
    use chrono::{Datelike, NaiveDate};

    fn ticks(from: &str, to: &str) -> Vec<String> {
        let day = |text: &str| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .unwrap()
                .num_days_from_ce()
        };
        (day_ticks(day(from), day(to)).iter())
            .map(|&x| NaiveDate::from_num_days_from_ce_opt(x).unwrap().to_string())
            .collect()
    }

    #[test]
    fn time_ticks_fall_on_months_epiweeks_or_days() {
        assert_eq!(
            ticks("2020-03-15", "2020-07-20"),
            ["2020-04-01", "2020-05-01", "2020-06-01", "2020-07-01"]
        );
        // Two years: quarters.
        let quarters = ticks("2020-02-10", "2022-01-20");
        assert_eq!(quarters[..3], ["2020-04-01", "2020-07-01", "2020-10-01"]);
        assert_eq!(quarters.len(), 8);
        // Two months: the Sundays that start epiweeks; over four, every other one.
        let weeks = ticks("2020-05-01", "2020-06-29");
        assert_eq!(weeks[..3], ["2020-05-03", "2020-05-10", "2020-05-17"]);
        assert_eq!(weeks.len(), 9);
        assert_eq!(
            ticks("2020-05-01", "2020-07-25")[..3],
            ["2020-05-03", "2020-05-17", "2020-05-31"]
        );
        // A week: days.
        assert_eq!(ticks("2020-06-01", "2020-06-03").len(), 3);
        // Decades: Januaries.
        let years = ticks("1990-01-01", "2021-12-31");
        assert!(years.len() <= 10 && years.iter().all(|d| d.ends_with("-01-01")));
    }
}
