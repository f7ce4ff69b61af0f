//! The look of `migrate plot`, shared by every series it draws: one colour per geo, one
//! shade of it per as-of date (light for old, full for the newest), text sizes, and a
//! legend panel beside the charts that names what each colour and shade means.

use plotters::coord::Shift;
use plotters::prelude::*;

pub const FONT: &str = "sans-serif";
pub const TITLE_SIZE: f64 = 19.0;
pub const TEXT_SIZE: f64 = 14.0;

/// Distinct hues for geos (Tableau's ten, which stay apart for most colour-blind readers);
/// after ten they repeat.
const GEO_COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of the `index`th geo.
pub fn geo_color(index: usize) -> RGBColor {
    GEO_COLORS[index % GEO_COLORS.len()]
}

/// The share of white mixed into the oldest of several shades: light, yet visible on white.
const OLDEST_WHITE: f64 = 0.75;

/// Shade `rank` of `count` (0 the oldest) of `color`: mixed with white for old dates, the
/// colour itself for the newest.
pub fn shade(color: RGBColor, rank: usize, count: usize) -> RGBColor {
    let age = if count > 1 {
        1.0 - rank as f64 / (count - 1) as f64
    } else {
        0.0
    };
    let white = OLDEST_WHITE * age;
    let mix = |c: u8| (c as f64 + (255.0 - c as f64) * white).round() as u8;
    RGBColor(mix(color.0), mix(color.1), mix(color.2))
}

/// Line width of shade `rank` of `count`: the newest a wide band (drawn translucent,
/// underneath the others), the older ones thin.
pub fn shade_width(rank: usize, count: usize) -> u32 {
    if rank + 1 == count && count > 1 {
        6
    } else {
        2
    }
}

/// Width in pixels of `text` at `size`, generously: SVG leaves the font to the viewer, and
/// a label cut at the edge is worse than a little space.
pub fn text_width(text: &str, size: f64) -> u32 {
    // Plotters writes font-size = size / 1.24; a sans-serif digit is ~0.62 em wide.
    (text.chars().count() as f64 * size / 1.24 * 0.62).ceil() as u32
}

/// Labels of numbers between `lo` and `hi`, with as many decimals as ticks `step` apart
/// need, and no more.
pub fn number_label(lo: f64, hi: f64, ticks: usize) -> impl Fn(&f64) -> String {
    let step = (hi - lo).abs() / ticks.max(1) as f64;
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).clamp(0.0, 12.0) as usize
    } else {
        0
    };
    move |v: &f64| {
        let text = format!("{v:.decimals$}");
        // No "-0" at zero.
        if text
            .trim_start_matches('-')
            .chars()
            .all(|c| c == '0' || c == '.')
        {
            text.trim_start_matches('-').to_string()
        } else {
            text
        }
    }
}

/// A number with thousands separated: 28,739.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a legend entry's sample looks like.
#[derive(Debug, Clone)]
pub enum Swatch {
    Line {
        color: RGBColor,
        width: u32,
    },
    /// A translucent wide line, as the newest as-of line.
    Band {
        color: RGBColor,
        width: u32,
        opacity: f64,
    },
    /// A translucent square, as the revision marks.
    Mark {
        color: RGBColor,
        opacity: f64,
    },
}

/// One line of a legend: swatches side by side (one per geo, say), then the label.
#[derive(Debug, Clone)]
pub struct Entry {
    pub swatches: Vec<Swatch>,
    pub label: String,
}

/// A legend: sections with a heading each.
#[derive(Debug, Clone, Default)]
pub struct Legend {
    pub sections: Vec<(String, Vec<Entry>)>,
}

const SWATCH: u32 = 22;
const SWATCH_GAP: u32 = 4;
const ROW: u32 = 19;

impl Legend {
    pub fn section(&mut self, heading: impl Into<String>, entries: Vec<Entry>) {
        self.sections.push((heading.into(), entries));
    }

    /// The width it takes.
    pub fn width(&self) -> u32 {
        let entries = self.sections.iter().flat_map(|(_, e)| e);
        let widest_entry = entries
            .map(|e| {
                e.swatches.len() as u32 * (SWATCH + SWATCH_GAP) + text_width(&e.label, TEXT_SIZE)
            })
            .max()
            .unwrap_or(0);
        let widest_heading = (self.sections.iter())
            .map(|(h, _)| text_width(h, TEXT_SIZE))
            .max()
            .unwrap_or(0);
        widest_entry.max(widest_heading) + 16
    }

    /// Draws it from the top left corner of `area`.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let text = (FONT, TEXT_SIZE).into_font().color(&BLACK);
        let heading = (FONT, TEXT_SIZE)
            .into_font()
            .style(FontStyle::Bold)
            .color(&BLACK);
        let mut y = 6i32;
        for (title, entries) in &self.sections {
            area.draw(&Text::new(title.clone(), (4, y), heading.clone()))?;
            y += ROW as i32;
            for entry in entries {
                let mut x = 8i32;
                let middle = y + ROW as i32 / 2 - 4;
                for swatch in &entry.swatches {
                    draw_swatch(area, swatch, x, middle)?;
                    x += (SWATCH + SWATCH_GAP) as i32;
                }
                area.draw(&Text::new(entry.label.clone(), (x + 2, y), text.clone()))?;
                y += ROW as i32;
            }
            y += ROW as i32 / 2;
        }
        Ok(())
    }
}

fn draw_swatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    swatch: &Swatch,
    x: i32,
    y: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let end = x + SWATCH as i32;
    match swatch {
        Swatch::Line { color, width } => area.draw(&PathElement::new(
            vec![(x, y), (end, y)],
            color.stroke_width(*width),
        )),
        Swatch::Band {
            color,
            width,
            opacity,
        } => area.draw(&PathElement::new(
            vec![(x, y), (end, y)],
            color.mix(*opacity).stroke_width(*width),
        )),
        Swatch::Mark { color, opacity } => area.draw(&Rectangle::new(
            [(x + 6, y - 5), (end - 6, y + 5)],
            color.mix(*opacity).filled(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shades_go_from_light_to_the_colour_itself() {
        let blue = RGBColor(31, 119, 180);
        assert_eq!(shade(blue, 7, 8), blue);
        // The oldest: 75% of the way to white.
        let oldest = shade(blue, 0, 8);
        assert_eq!(oldest, RGBColor(199, 221, 236));
        assert_eq!(shade(blue, 0, 1), blue);
        // Each date a different shade, lighter as it is older.
        let reds: Vec<u8> = (0..8).map(|r| shade(blue, r, 8).0).collect();
        assert!(reds.windows(2).all(|w| w[0] > w[1]), "{reds:?}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(28739), "28,739");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000_000), "1,000,000");
        let label = number_label(0.0, 0.05, 5);
        assert_eq!(label(&0.02), "0.02");
        assert_eq!(label(&-0.0), "0.00");
        let label = number_label(-3000.0, 7000.0, 10);
        assert_eq!(label(&2500.0), "2500");
    }
}
