//! MMWR epiweeks (the CDC's weeks): weeks run Sunday to Saturday and week 1 of a year is the
//! first week with at least four of its days in that year, i.e. the week holding January 4th.
//! No crate does this, and the original tool got weekly lags wrong, so it lives here with tests.

use chrono::{Datelike, Days, NaiveDate};

/// An MMWR epiweek: a year and a week number in 1..=52 (or 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epiweek {
    pub year: i32,
    pub week: u32,
}

impl Epiweek {
    /// The epiweek that contains `date`.
    pub fn containing(date: NaiveDate) -> Epiweek {
        let sunday = week_start(date);
        // The epiweek's year is the year of its Wednesday: that day decides which year holds
        // at least four of the week's seven days.
        let year = (sunday + Days::new(3)).year();
        let week = (sunday - first_sunday(year)).num_days() / 7 + 1;
        Epiweek {
            year,
            week: week as u32,
        }
    }

    /// Parses `YYYYWW` as written in `time_value` of weekly rows; None if it is no epiweek.
    pub fn from_yyyyww(value: i64) -> Option<Epiweek> {
        let year = i32::try_from(value / 100).ok()?;
        let week = u32::try_from(value % 100).ok()?;
        if !(1..=9999).contains(&year) || week == 0 || week > weeks_in_year(year) {
            return None;
        }
        Some(Epiweek { year, week })
    }

    /// `YYYYWW`, the form Epidata stores weekly `time_value` and `issue` in.
    pub fn yyyyww(self) -> i64 {
        i64::from(self.year) * 100 + i64::from(self.week)
    }

    /// The Sunday the week starts on.
    pub fn start(self) -> NaiveDate {
        first_sunday(self.year) + Days::new(7 * u64::from(self.week - 1))
    }

    /// Whole epiweeks from `self` to `later` (negative when `later` is earlier).
    pub fn weeks_until(self, later: Epiweek) -> i64 {
        (later.start() - self.start()).num_days() / 7
    }
}

/// Number of epiweeks in `year`: 53 when its last week still holds Wednesday Dec 31st's week.
pub fn weeks_in_year(year: i32) -> u32 {
    let next_first = first_sunday(year + 1);
    ((next_first - first_sunday(year)).num_days() / 7) as u32
}

/// The Sunday on or before January 4th: the first day of epiweek 1.
fn first_sunday(year: i32) -> NaiveDate {
    let jan4 = NaiveDate::from_ymd_opt(year, 1, 4).expect("January 4th exists in every year");
    week_start(jan4)
}

fn week_start(date: NaiveDate) -> NaiveDate {
    date - Days::new(u64::from(date.weekday().num_days_from_sunday()))
}

/// Parses a `YYYYMMDD` integer into a date; None if it is no date.
pub fn date_from_yyyymmdd(value: i64) -> Option<NaiveDate> {
    let year = i32::try_from(value / 10_000).ok()?;
    let month = u32::try_from(value / 100 % 100).ok()?;
    let day = u32::try_from(value % 100).ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// The `YYYYMMDD` integer of a date.
pub fn yyyymmdd(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 10_000 + i64::from(date.month()) * 100 + i64::from(date.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ymd: i64) -> NaiveDate {
        date_from_yyyymmdd(ymd).unwrap()
    }

    /// Dates and their epiweeks, checked against the CDC's published MMWR week calendars.
    #[test]
    fn epiweek_of_dates_across_year_boundaries() {
        let table = [
            (20140101, 201401), // Wednesday: week 1 of 2014 began Sunday Dec 29th 2013
            (20131229, 201401),
            (20131228, 201352),
            (20141231, 201453), // 2014 has 53 weeks
            (20150103, 201453),
            (20150104, 201501),
            (20200101, 202001),
            (20191229, 202001),
            (20201231, 202053), // 2020 has 53 weeks
            (20210102, 202053),
            (20210103, 202101),
            (20220101, 202152), // Saturday: still the last week of 2021
            (20220102, 202201),
            (20160101, 201552), // Friday Jan 1st 2016 belongs to 2015's last week
            (20160103, 201601),
            (20200615, 202025),
            (20200614, 202025),
            (20200613, 202024),
        ];
        for (date, week) in table {
            assert_eq!(Epiweek::containing(d(date)).yyyyww(), week, "date {date}");
        }
    }

    #[test]
    fn weeks_in_years() {
        for year in [2014, 2020, 2025] {
            assert_eq!(weeks_in_year(year), 53, "{year}");
        }
        for year in [2013, 2015, 2016, 2019, 2021, 2022, 2023, 2024] {
            assert_eq!(weeks_in_year(year), 52, "{year}");
        }
    }

    #[test]
    fn parse_and_reject_epiweeks() {
        assert_eq!(
            Epiweek::from_yyyyww(202053),
            Some(Epiweek {
                year: 2020,
                week: 53
            })
        );
        assert_eq!(Epiweek::from_yyyyww(202153), None);
        assert_eq!(Epiweek::from_yyyyww(202100), None);
        assert_eq!(Epiweek::from_yyyyww(20200101), None);
    }

    #[test]
    fn lag_in_weeks_across_53_week_years() {
        let table = [
            (202052, 202053, 1),
            (202053, 202101, 1),
            (202050, 202102, 5),
            (201452, 201501, 2),
            (201952, 202001, 1),
            (202001, 202001, 0),
            (202002, 202001, -1),
            (201901, 202001, 52),
            (202001, 202101, 53),
        ];
        for (from, to, lag) in table {
            let from_week = Epiweek::from_yyyyww(from).unwrap();
            let to_week = Epiweek::from_yyyyww(to).unwrap();
            assert_eq!(from_week.weeks_until(to_week), lag, "{from} -> {to}");
        }
    }

    #[test]
    fn week_start_is_sunday_and_round_trips() {
        for ymd in [20141231, 20200101, 20201231, 20210103, 20230615] {
            let week = Epiweek::containing(d(ymd));
            assert_eq!(week.start().weekday(), chrono::Weekday::Sun);
            assert!(week.start() <= d(ymd) && d(ymd) < week.start() + Days::new(7));
            assert_eq!(Epiweek::from_yyyyww(week.yyyyww()), Some(week));
        }
    }

    #[test]
    fn yyyymmdd_round_trip_and_invalid_dates() {
        assert_eq!(yyyymmdd(d(20200229)), 20200229);
        assert_eq!(date_from_yyyymmdd(20210229), None);
        assert_eq!(date_from_yyyymmdd(20201301), None);
    }
}
