//! `migrate plot` draws the values as of each chosen date and every revision of the series:
//! one colour per geo, one shade per date, named in a legend; revisions as translucent marks
//! with their count in the title; no label cut at the edge.

mod common;
mod handmade;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use common::*;

/// One element of an SVG: its tag, attributes, and text (for `<text>`).
#[derive(Debug)]
struct Element {
    tag: String,
    attrs: HashMap<String, String>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> &str {
        self.attrs.get(name).map_or("", String::as_str)
    }

    fn number(&self, name: &str) -> f64 {
        self.attr(name).parse().unwrap_or(f64::NAN)
    }
}

/// The drawing elements of an SVG, in order.
fn elements(svg: &str) -> Vec<Element> {
    let element =
        regex::Regex::new(r"(?s)<(polyline|rect|text|circle)\s([^>]*?)/?>(?:([^<]*)</text>)?")
            .unwrap();
    let attribute = regex::Regex::new(r#"([\w-]+)="([^"]*)""#).unwrap();
    element
        .captures_iter(svg)
        .map(|c| Element {
            tag: c[1].to_string(),
            attrs: (attribute.captures_iter(&c[2]))
                .map(|a| (a[1].to_string(), a[2].to_string()))
                .collect(),
            text: c
                .get(3)
                .map_or(String::new(), |t| t.as_str().trim().to_string()),
        })
        .collect()
}

/// `#RRGGBB` as numbers.
fn rgb(color: &str) -> (u32, u32, u32) {
    let c = |i: usize| u32::from_str_radix(&color[i..i + 2], 16).unwrap();
    (c(1), c(3), c(5))
}

/// The colours of the line swatches of the legend entry `label` (short coloured lines drawn
/// just before its text); None if no text `label` has any (an axis label, after its black
/// tick, say).
fn legend_entry(elements: &[Element], label: &str) -> Option<Vec<String>> {
    (0..elements.len())
        .filter(|&at| elements[at].tag == "text" && elements[at].text == label)
        .map(|at| {
            let mut swatches: Vec<String> = (elements[..at].iter().rev())
                .take_while(|e| {
                    e.tag == "polyline" && e.attr("points").split_whitespace().count() == 2
                })
                .map(|e| e.attr("stroke").to_string())
                .filter(|stroke| stroke != "#000000")
                .collect();
            swatches.reverse();
            swatches
        })
        .find(|swatches| !swatches.is_empty())
}

fn swatches_before(elements: &[Element], label: &str) -> Vec<String> {
    legend_entry(elements, label).unwrap_or_else(|| panic!("no legend entry {label:?}"))
}

/// Fails if a text would be cut at the edge of the drawing, its width taken generously
/// (0.65 em a character, wider than common sans-serif digits).
fn assert_no_text_cut(elements: &[Element], width: f64, height: f64) {
    for text in elements.iter().filter(|e| e.tag == "text") {
        let size = text.number("font-size");
        let extent = text.text.chars().count() as f64 * size * 0.65;
        let (x, y) = (text.number("x"), text.number("y"));
        if !text.attr("transform").is_empty() {
            // Rotated (the y axis' name): it runs along y.
            assert!(
                y - extent / 2.0 >= 0.0 && y + extent / 2.0 <= height,
                "{text:?}"
            );
            continue;
        }
        let (left, right) = match text.attr("text-anchor") {
            "middle" => (x - extent / 2.0, x + extent / 2.0),
            "end" => (x - extent, x),
            _ => (x, x + extent),
        };
        // Where `dy` puts the text around `y`.
        let (top, bottom) = match text.attr("dy") {
            "0.76em" => (y, y + size),
            "-0.5ex" => (y - size, y),
            "0.5ex" => (y - size / 2.0, y + size / 2.0),
            _ => (y - size, y + size / 4.0),
        };
        assert!(left >= 0.0 && right <= width, "cut at the edge: {text:?}");
        assert!(top >= 0.0 && bottom <= height, "cut at the edge: {text:?}");
    }
}

fn plot(out: &Path, args: &[&str], svg: &Path) -> String {
    let output = migrate()
        .arg("plot")
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--to")
        .arg(svg)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn plots_lines_per_asof_date_and_every_revision() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    let svg = out.path().join("backfill.svg");
    let args = [
        "--source",
        "fb-survey",
        "--signal",
        "smoothed_cli",
        "--geo",
        "01001,42003",
        "--asof",
        "20200601,20200604,20200608",
    ];
    let stdout = plot(out.path(), &args, &svg);
    // Independently: revisions of those series in the expected issues (a key seen before).
    let expected = read_outfile_csv(&expected("issues.csv"));
    let mut seen = std::collections::HashSet::new();
    let mut revisions = 0;
    for row in &expected.rows {
        let key = row[..6].to_vec();
        let chosen = row[1].as_deref() == Some("smoothed_cli")
            && matches!(row[5].as_deref(), Some("01001" | "42003"));
        if !seen.insert(key) && chosen && row[7].is_some() {
            revisions += 1;
        }
    }
    assert!(
        stdout.ends_with(&format!(": 6 lines, {revisions} revisions\n")),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"));
    let elements = elements(&text);
    let texts: BTreeSet<&str> = elements.iter().map(|e| e.text.as_str()).collect();
    for label in [
        "geo",
        "01001",
        "42003",
        "2020-06-01",
        "2020-06-04",
        "2020-06-08",
        "fb-survey smoothed_cli: value as of each backup",
        &format!("{revisions} revisions of value by lag: new − old, darker where more"),
        "lag (days)",
    ] {
        assert!(
            texts.contains(label),
            "{label:?} missing from the plot: {texts:?}"
        );
    }
    assert_eq!(legend_entry(&elements, "2020-06-03"), None);
    assert!(texts.iter().any(|t| t.starts_with("as of")), "{texts:?}");

    // One colour per geo: the legend's geo swatch, and the newest date's shades.
    let geo_colors: Vec<String> = ["01001", "42003"]
        .iter()
        .map(|geo| swatches_before(&elements, geo).concat())
        .collect();
    assert_ne!(geo_colors[0], geo_colors[1]);
    assert_eq!(swatches_before(&elements, "2020-06-08"), geo_colors);
    // One shade per date and geo, all different, lighter as the date is older.
    let shades: Vec<Vec<String>> = ["2020-06-01", "2020-06-04", "2020-06-08"]
        .iter()
        .map(|date| swatches_before(&elements, date))
        .collect();
    let all: BTreeSet<&String> = shades.iter().flatten().collect();
    assert_eq!(all.len(), 6, "{shades:?}");
    for geo in 0..2 {
        let lightness: Vec<u32> = (shades.iter())
            .map(|row| {
                let (r, g, b) = rgb(&row[geo]);
                r + g + b
            })
            .collect();
        assert!(lightness.windows(2).all(|w| w[0] > w[1]), "{lightness:?}");
    }
    // Every line of data (more than two points) is in one of those shades.
    let data_lines: Vec<&Element> = (elements.iter())
        .filter(|e| e.tag == "polyline" && e.attr("points").split_whitespace().count() > 2)
        .collect();
    let drawn: BTreeSet<String> = data_lines.iter().map(|l| l.attr("stroke").into()).collect();
    assert!(
        drawn.iter().all(|c| all.contains(c)),
        "{drawn:?} not in {all:?}"
    );
    // (42003 has a single point as of 20200601: no line of more than two points.)
    assert!(
        drawn.len() >= 5 && geo_colors.iter().all(|c| drawn.contains(c)),
        "{drawn:?}"
    );
    // Revisions are translucent marks in their geo's colour, no more than revisions.
    let marks: Vec<&Element> = (elements.iter())
        .filter(|e| e.tag == "rect" && geo_colors.contains(&e.attr("fill").to_string()))
        .filter(|e| e.number("y") > 470.0 && e.number("x") < 880.0)
        .collect();
    assert!(!marks.is_empty() && marks.len() <= revisions, "{marks:?}");
    assert!(marks.iter().all(|m| m.number("opacity") < 1.0), "{marks:?}");
    assert!(!elements.iter().any(|e| e.tag == "circle"));
    let width = elements[0].number("width");
    assert_eq!(width, 1100.0, "{:?}", elements[0]);
    assert_no_text_cut(&elements, width, elements[0].number("height"));
}

/// Issue 17: the weekly lag counts epiweeks, and the axis says so.
#[test]
fn a_weekly_series_counts_its_lag_in_epiweeks() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    let svg = out.path().join("weekly.svg");
    let args = [
        "--source",
        "fb-survey",
        "--signal",
        "smoothed_wili",
        "--geo",
        "pa",
    ];
    plot(out.path(), &args, &svg);
    let elements = elements(&std::fs::read_to_string(&svg).unwrap());
    let texts: BTreeSet<&str> = elements.iter().map(|e| e.text.as_str()).collect();
    assert!(texts.contains("lag (epiweeks)"), "{texts:?}");
    assert!(!texts.contains("lag (days)"));
    assert_no_text_cut(&elements, 1100.0, 820.0);
}

#[test]
fn an_unknown_series_or_date_is_an_error() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    let plot = |extra: &[&str]| {
        migrate()
            .args([
                "plot",
                "--source",
                "fb-survey",
                "--signal",
                "smoothed_cli",
                "--out",
            ])
            .arg(out.path())
            .arg("--to")
            .arg(out.path().join("x.svg"))
            .args(extra)
            .assert()
            .code(1)
    };
    plot(&["--geo", "99999"]);
    plot(&["--geo", "01001", "--asof", "20200605"]);
}

#[test]
fn series_at_lags_are_drawn_against_the_latest_values() {
    let out = tempfile::tempdir().unwrap();
    migrate_fixtures(out.path(), &[]);
    let svg = out.path().join("lags.svg");
    let output = migrate()
        .args(["plot", "--source", "fb-survey", "--signal", "smoothed_cli"])
        .args(["--geo", "01001,42003", "--lag", "1,3", "--out"])
        .arg(out.path())
        .arg("--to")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The latest values (as of the last backup) and two lags, for two geos each.
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains(": 6 lines, "), "{stdout}");
    let text = std::fs::read_to_string(&svg).unwrap();
    // The legend names the one as-of date and each lag (6 lines: 2 geos × (1 date + 2 lags)).
    for label in ["\n2020-06-08\n", "\nlag 1\n", "\nlag 3\n", "dashed: at lag"] {
        assert!(text.contains(label), "{label:?} missing from the plot");
    }
    // Chosen as-of dates are drawn beside the lags.
    migrate()
        .args(["plot", "--source", "fb-survey", "--signal", "smoothed_cli"])
        .args([
            "--geo",
            "01001",
            "--lag",
            "2",
            "--asof",
            "20200604,20200608",
            "--out",
        ])
        .arg(out.path())
        .arg("--to")
        .arg(&svg)
        .assert()
        .success()
        .stdout(predicates::str::contains(": 3 lines, "));
}

/// Backups of one daily series from 2020-03-01 to the day before each backup (2020-11-27 to
/// 2020-11-29), its last week revised in every backup: a real series' shape, months long.
fn write_long_series(dir: &Path) {
    let start = chrono::NaiveDate::from_ymd_opt(2020, 3, 1).unwrap();
    for (version, day) in [27, 28, 29].into_iter().enumerate() {
        let backup = chrono::NaiveDate::from_ymd_opt(2020, 11, day).unwrap();
        let rows: Vec<handmade::Row> = (start.iter_days().take_while(|d| *d < backup))
            .enumerate()
            .map(|(i, d)| {
                let age = (backup - d).num_days();
                let revised = if age <= 7 { version as f64 * 3.0 } else { 0.0 };
                let value = 50.0 + (i as f64 / 9.0).sin() * 20.0 + revised;
                let time_value = d.format("%Y%m%d").to_string().parse().unwrap();
                ("sig", "day", time_value, "42003", value)
            })
            .collect();
        handmade::write_backup(dir, &backup.format("%Y%m%d").to_string(), &rows);
    }
}

/// A series months long: the time axis ticks on month starts, not on days an even split
/// happens to fall on; the newest as-of line is a translucent band drawn first, under the
/// older lines, so that where they coincide (all but the revised end) they still show.
#[test]
fn month_ticks_and_older_lines_over_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    write_long_series(&backups);
    let out = dir.path().join("out");
    migrate()
        .arg("--backups")
        .arg(&backups)
        .arg("--out")
        .arg(&out)
        .arg("-q")
        .assert()
        .success();
    let svg = out.join("long.svg");
    plot(
        &out,
        &["--source", "src", "--signal", "sig", "--geo", "42003"],
        &svg,
    );
    let elements = elements(&std::fs::read_to_string(&svg).unwrap());
    let is_date = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}$").unwrap();
    let legend = ["2020-11-27", "2020-11-28", "2020-11-29"];
    let ticks: Vec<&str> = (elements.iter())
        .filter(|e| e.tag == "text" && is_date.is_match(&e.text))
        .map(|e| e.text.as_str())
        .filter(|t| !legend.contains(t))
        .collect();
    assert!(ticks.len() >= 4, "{ticks:?}");
    assert!(ticks.iter().all(|t| t.ends_with("-01")), "{ticks:?}");
    // The data lines: the newest (its legend swatch's colour) first and translucent, the
    // older after it, opaque.
    let newest = swatches_before(&elements, "2020-11-29")[0].clone();
    let lines: Vec<&Element> = (elements.iter())
        .filter(|e| e.tag == "polyline" && e.attr("points").split_whitespace().count() > 100)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0].attr("stroke"), newest);
    assert!(lines[0].number("opacity") < 1.0, "{:?}", lines[0]);
    assert!(lines[0].number("stroke-width") > lines[1].number("stroke-width"));
    for older in &lines[1..] {
        assert_ne!(older.attr("stroke"), newest);
        assert!(matches!(older.attr("opacity"), "" | "1"), "{older:?}");
    }
}
