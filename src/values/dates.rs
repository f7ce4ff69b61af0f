//! `--dates`: which backups a command works on, so that several machines can each extract a
//! share of the backups into one partitions tree.

use std::fmt;

use chrono::NaiveDate;

/// Dates and inclusive ranges of dates, as `--dates 20200601..20200630,20200715` writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateSelection {
    /// Inclusive bounds; None is open on that side.
    ranges: Vec<(Option<NaiveDate>, Option<NaiveDate>)>,
    text: String,
}

impl DateSelection {
    /// Parses comma-separated `YYYYMMDD`, `A..B`, `A..` and `..B`.
    pub fn parse(text: &str) -> Result<DateSelection, String> {
        let date = |part: &str| {
            NaiveDate::parse_from_str(part, "%Y%m%d")
                .map_err(|_| format!("{part:?} is not a date YYYYMMDD (in --dates {text})"))
        };
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (low, high) = match part.split_once("..") {
                None => (Some(date(part)?), Some(date(part)?)),
                Some(("", "")) => return Err(format!("{part:?} has neither end (in --dates)")),
                Some((low, high)) => (
                    (!low.is_empty()).then(|| date(low)).transpose()?,
                    (!high.is_empty()).then(|| date(high)).transpose()?,
                ),
            };
            if let (Some(low), Some(high)) = (low, high) {
                if low > high {
                    return Err(format!("{part:?} ends before it starts (in --dates)"));
                }
            }
            ranges.push((low, high));
        }
        Ok(DateSelection {
            ranges,
            text: text.to_string(),
        })
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        self.ranges.iter().any(|(low, high)| {
            low.is_none_or(|low| low <= date) && high.is_none_or(|high| date <= high)
        })
    }
}

impl fmt::Display for DateSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y%m%d").unwrap()
    }

    #[test]
    fn ranges_are_inclusive_and_may_be_open() {
        let june = DateSelection::parse("20200601..20200630").unwrap();
        assert!(june.contains(day("20200601")) && june.contains(day("20200630")));
        assert!(!june.contains(day("20200531")) && !june.contains(day("20200701")));
        let mixed = DateSelection::parse("..20200602,20200605, 20200610..").unwrap();
        let picked: Vec<bool> = ["20200101", "20200603", "20200605", "20200606", "20991231"]
            .iter()
            .map(|d| mixed.contains(day(d)))
            .collect();
        assert_eq!(picked, [true, false, true, false, true]);
        assert_eq!(mixed.to_string(), "..20200602,20200605, 20200610..");
    }

    #[test]
    fn bad_selections_are_named() {
        for (text, says) in [
            ("2020-06-01", "not a date"),
            ("20200631", "not a date"),
            ("20200610..20200601", "ends before it starts"),
            ("..", "neither end"),
            ("20200601,", "not a date"),
        ] {
            let error = DateSelection::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
