//! `issue` and `lag` of an issue row, as the Delphi Epidata API defines them, and for a
//! table whose time column is a date.

use chrono::NaiveDate;

use crate::values::epiweek::{date_from_yyyymmdd, yyyymmdd, Epiweek};

/// The `issue` and `lag` of a row with this `time_type` and `time_value` first seen in the
/// backup of `backup_date`: days for daily rows, MMWR epiweeks for weekly rows.
pub fn issue_and_lag(
    time_type: &str,
    time_value: i64,
    backup_date: NaiveDate,
) -> Result<(i64, i64), String> {
    match time_type {
        "day" => {
            let day = date_from_yyyymmdd(time_value)
                .ok_or_else(|| format!("time_value {time_value} is not a YYYYMMDD date"))?;
            Ok((yyyymmdd(backup_date), (backup_date - day).num_days()))
        }
        "week" => {
            let week = Epiweek::from_yyyyww(time_value)
                .ok_or_else(|| format!("time_value {time_value} is not a YYYYWW epiweek"))?;
            let issue = Epiweek::containing(backup_date);
            Ok((issue.yyyyww(), week.weeks_until(issue)))
        }
        other => Err(format!(
            "time_type '{other}' is neither 'day' nor 'week', so issue and lag are undefined"
        )),
    }
}

/// The `issue` and `lag` of a row whose time column holds the day `day` (a `date`, or the
/// day of a `datetime`), first seen in the backup of `backup_date`: the backup date, and
/// the days from `day` to it.
pub fn issue_and_lag_of_day(day: NaiveDate, backup_date: NaiveDate) -> (i64, i64) {
    (yyyymmdd(backup_date), (backup_date - day).num_days())
}

/// The day a `date`, `datetime` or `timestamp` value begins with (`YYYY-MM-DD…`, as dumps
/// write them); None for anything else, MySQL's zero date `0000-00-00` among them.
pub fn day_of(text: &str) -> Option<NaiveDate> {
    let day = text.get(..10)?;
    let rest = &text[10..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('T')) {
        return None;
    }
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(ymd: i64) -> NaiveDate {
        date_from_yyyymmdd(ymd).unwrap()
    }

    #[test]
    fn daily_rows_lag_in_days() {
        assert_eq!(
            issue_and_lag("day", 20200601, date(20200615)),
            Ok((20200615, 14))
        );
        assert_eq!(
            issue_and_lag("day", 20201231, date(20210101)),
            Ok((20210101, 1))
        );
        assert_eq!(
            issue_and_lag("day", 20200229, date(20200301)),
            Ok((20200301, 1))
        );
        // A time_value after the backup date gives a negative lag rather than a lie.
        assert_eq!(
            issue_and_lag("day", 20200616, date(20200615)),
            Ok((20200615, -1))
        );
    }

    #[test]
    fn weekly_rows_lag_in_epiweeks() {
        // 2020-06-15 is a Monday in epiweek 2020-25.
        assert_eq!(
            issue_and_lag("week", 202023, date(20200615)),
            Ok((202025, 2))
        );
        // 2021-01-02 is the Saturday ending epiweek 2020-53.
        assert_eq!(
            issue_and_lag("week", 202052, date(20210102)),
            Ok((202053, 1))
        );
        assert_eq!(
            issue_and_lag("week", 202052, date(20210103)),
            Ok((202101, 2))
        );
        assert_eq!(
            issue_and_lag("week", 201453, date(20150110)),
            Ok((201501, 1))
        );
    }

    #[test]
    fn dated_rows_lag_in_days() {
        assert_eq!(
            issue_and_lag_of_day(day_of("2020-06-01").unwrap(), date(20200615)),
            (20200615, 14)
        );
        assert_eq!(
            day_of("2020-02-29 23:59:59.999"),
            NaiveDate::from_ymd_opt(2020, 2, 29)
        );
        for no_day in [
            "0000-00-00",
            "2020-02-30",
            "2020-6-1",
            "20200601",
            "2020-06-01x",
            "",
        ] {
            assert_eq!(day_of(no_day), None, "{no_day}");
        }
    }

    #[test]
    fn invalid_time_values_are_errors() {
        assert!(issue_and_lag("day", 20200231, date(20200301)).is_err());
        assert!(issue_and_lag("week", 201953, date(20200301)).is_err());
        assert!(issue_and_lag("month", 202001, date(20200301)).is_err());
    }
}
