//! Calendar windows and the compact history kept in customer state.
//!
//! Windows are inclusive of the event's local day: `in last 30 days` is the
//! 30 local dates ending with today; `this month` starts on the 1st. Weeks
//! run Monday to Sunday. Month arithmetic clamps (31 Jan + 1 month = 28/29 Feb).

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use rust_decimal::Decimal;

use crate::ast::{ExpirySpec, PeriodUnit, Window};
use crate::state::{DayBucket, EventHistory, PointsHistory};

/// First day of the calendar period containing `d`.
pub(crate) fn period_start(d: NaiveDate, u: PeriodUnit) -> NaiveDate {
    match u {
        PeriodUnit::Day => d,
        PeriodUnit::Week => d - Days::new(u64::from(d.weekday().num_days_from_monday())),
        PeriodUnit::Month => d.with_day(1).unwrap_or(d),
        PeriodUnit::Year => NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap_or(d),
    }
}

/// First day of the window ending `today` (None: all time).
pub(crate) fn window_start(today: NaiveDate, w: Window) -> Option<NaiveDate> {
    Some(match w {
        Window::Ever => return None,
        Window::Today => today,
        Window::This(u) => period_start(today, u),
        Window::Last(n, u) => {
            let n = n.max(1);
            match u {
                PeriodUnit::Day => today - Days::new(u64::from(n - 1)),
                PeriodUnit::Week => today - Days::new(u64::from(n) * 7 - 1),
                PeriodUnit::Month => sub_months(today, n)? + Days::new(1),
                PeriodUnit::Year => sub_months(today, n.saturating_mul(12))? + Days::new(1),
            }
        }
    })
}

fn sub_months(d: NaiveDate, n: u32) -> Option<NaiveDate> {
    d.checked_sub_months(Months::new(n))
}

/// `t` plus `n` units, in local calendar terms for months and years.
pub(crate) fn add_period(
    t: DateTime<Utc>,
    tz: crate::tz::Tz,
    n: u32,
    u: PeriodUnit,
) -> Option<DateTime<Utc>> {
    shift_period(t, tz, n, u, true)
}

/// `t` minus `n` units, in local calendar terms for months and years.
pub(crate) fn sub_period(
    t: DateTime<Utc>,
    tz: crate::tz::Tz,
    n: u32,
    u: PeriodUnit,
) -> Option<DateTime<Utc>> {
    shift_period(t, tz, n, u, false)
}

fn shift_period(
    t: DateTime<Utc>,
    tz: crate::tz::Tz,
    n: u32,
    u: PeriodUnit,
    forward: bool,
) -> Option<DateTime<Utc>> {
    let days = |d: u64| {
        if forward {
            t.checked_add_days(Days::new(d))
        } else {
            t.checked_sub_days(Days::new(d))
        }
    };
    match u {
        PeriodUnit::Day => days(u64::from(n)),
        PeriodUnit::Week => days(u64::from(n) * 7),
        PeriodUnit::Month | PeriodUnit::Year => {
            let months = Months::new(if u == PeriodUnit::Year {
                n.saturating_mul(12)
            } else {
                n
            });
            let local = t.with_timezone(&tz).naive_local();
            let shifted = if forward {
                local.checked_add_months(months)
            } else {
                local.checked_sub_months(months)
            };
            Some(resolve(tz, shifted?))
        }
    }
}

fn resolve(tz: crate::tz::Tz, local: chrono::NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        // in a DST gap: the first instant after it
        chrono::LocalResult::None => tz
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
            .map_or_else(|| Utc.from_utc_datetime(&local), |t| t.with_timezone(&Utc)),
    }
}

/// When points earned at `t` expire.
pub(crate) fn expiry_of(
    t: DateTime<Utc>,
    tz: crate::tz::Tz,
    spec: ExpirySpec,
) -> Option<DateTime<Utc>> {
    match spec {
        ExpirySpec::Never => None,
        ExpirySpec::After(n, u) => add_period(t, tz, n, u),
        ExpirySpec::EndOf(u) => {
            // the start (local midnight) of the next period
            let today = t.with_timezone(&tz).date_naive();
            let start = period_start(today, u);
            let next = match u {
                PeriodUnit::Day => start.checked_add_days(Days::new(1)),
                PeriodUnit::Week => start.checked_add_days(Days::new(7)),
                PeriodUnit::Month => start.checked_add_months(Months::new(1)),
                PeriodUnit::Year => start.checked_add_months(Months::new(12)),
            }?;
            Some(resolve(tz, next.and_time(NaiveTime::MIN)))
        }
    }
}

/// Events of this type in the window.
pub(crate) fn count(h: &EventHistory, today: NaiveDate, w: Window) -> u64 {
    match window_start(today, w) {
        None => h.total,
        Some(from) => h
            .days
            .iter()
            .rev()
            .take_while(|b| b.date >= from)
            .filter(|b| b.date <= today)
            .map(|b| b.count)
            .sum(),
    }
}

/// Sum of tracked field `pos` in the window.
pub(crate) fn sum(h: &EventHistory, pos: usize, today: NaiveDate, w: Window) -> Decimal {
    match window_start(today, w) {
        None => h.totals.get(pos).copied().unwrap_or_default(),
        Some(from) => h
            .days
            .iter()
            .rev()
            .take_while(|b| b.date >= from)
            .filter(|b| b.date <= today)
            .filter_map(|b| b.sums.get(pos))
            .fold(Decimal::ZERO, |a, b| a.saturating_add(*b)),
    }
}

/// Points earned in the window.
pub(crate) fn points(h: &PointsHistory, today: NaiveDate, w: Window) -> Decimal {
    match window_start(today, w) {
        None => h.total,
        Some(from) => h
            .days
            .iter()
            .rev()
            .take_while(|(d, _)| *d >= from)
            .filter(|(d, _)| *d <= today)
            .fold(Decimal::ZERO, |a, (_, p)| a.saturating_add(*p)),
    }
}

/// Record one event in its type's history and drop buckets older than
/// `retention_days` before `today`.
pub(crate) fn record(
    h: &mut EventHistory,
    t: DateTime<Utc>,
    today: NaiveDate,
    values: &[Decimal],
    retention_days: u32,
) {
    h.total += 1;
    if h.totals.len() < values.len() {
        h.totals.resize(values.len(), Decimal::ZERO);
    }
    for (tot, v) in h.totals.iter_mut().zip(values) {
        *tot = tot.saturating_add(*v);
    }
    h.prev_at = h.last_at;
    h.last_at = Some(t);
    if retention_days > 0 {
        match h.days.last_mut() {
            Some(b) if b.date == today => {
                b.count += 1;
                if b.sums.len() < values.len() {
                    b.sums.resize(values.len(), Decimal::ZERO);
                }
                for (s, v) in b.sums.iter_mut().zip(values) {
                    *s = s.saturating_add(*v);
                }
            }
            _ => h.days.push(DayBucket {
                date: today,
                count: 1,
                sums: values.to_vec(),
            }),
        }
        let keep_from = today - Days::new(u64::from(retention_days));
        let old = h.days.iter().take_while(|b| b.date < keep_from).count();
        if old > 0 {
            h.days.drain(..old);
        }
    }
    // streaks
    h.streak_days = match h.streak_day {
        Some(d) if d == today => h.streak_days,
        Some(d) if d.succ_opt() == Some(today) => h.streak_days + 1,
        _ => 1,
    };
    h.streak_day = Some(today);
    let week = period_start(today, PeriodUnit::Week);
    h.streak_weeks = match h.streak_week {
        Some(w) if w == week => h.streak_weeks,
        Some(w) if w.checked_add_days(Days::new(7)) == Some(week) => h.streak_weeks + 1,
        _ => 1,
    };
    h.streak_week = Some(week);
}

/// Add points earned (or, negative, reversed) on `today`.
pub(crate) fn record_points(
    h: &mut PointsHistory,
    today: NaiveDate,
    p: Decimal,
    retention_days: u32,
) {
    h.total = h.total.saturating_add(p);
    if retention_days == 0 {
        return;
    }
    match h.days.last_mut() {
        Some((d, v)) if *d == today => *v = v.saturating_add(p),
        _ => h.days.push((today, p)),
    }
    let keep_from = today - Days::new(u64::from(retention_days));
    let old = h.days.iter().take_while(|(d, _)| *d < keep_from).count();
    if old > 0 {
        h.days.drain(..old);
    }
}

/// The current streak as seen on `today` (0 if it was broken).
pub(crate) fn streak(h: &EventHistory, today: NaiveDate, weeks: bool) -> u32 {
    if weeks {
        let week = period_start(today, PeriodUnit::Week);
        match h.streak_week {
            Some(w) if w == week || w.checked_add_days(Days::new(7)) == Some(week) => {
                h.streak_weeks
            }
            _ => 0,
        }
    } else {
        match h.streak_day {
            Some(d) if d == today || d.succ_opt() == Some(today) => h.streak_days,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn windows_are_inclusive_of_today() {
        let t = d("2026-03-31");
        assert_eq!(
            window_start(t, Window::Last(30, PeriodUnit::Day)),
            Some(d("2026-03-02"))
        );
        assert_eq!(
            window_start(t, Window::Last(1, PeriodUnit::Week)),
            Some(d("2026-03-25"))
        );
        // 31 March - 1 month clamps to 28 Feb, the window starts the day after
        assert_eq!(
            window_start(t, Window::Last(1, PeriodUnit::Month)),
            Some(d("2026-03-01"))
        );
        assert_eq!(
            window_start(t, Window::This(PeriodUnit::Week)),
            Some(d("2026-03-30"))
        );
        assert_eq!(
            window_start(t, Window::This(PeriodUnit::Year)),
            Some(d("2026-01-01"))
        );
    }

    #[test]
    fn month_expiry_clamps() {
        let t = "2026-01-31T12:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let e = expiry_of(
            t,
            crate::tz::Tz::UTC,
            ExpirySpec::After(1, PeriodUnit::Month),
        )
        .unwrap();
        assert_eq!(e.to_rfc3339(), "2026-02-28T12:00:00+00:00");
        let e = expiry_of(
            t,
            crate::tz::Tz::from_name("Europe/Paris").unwrap(),
            ExpirySpec::EndOf(PeriodUnit::Year),
        )
        .unwrap();
        assert_eq!(e.to_rfc3339(), "2026-12-31T23:00:00+00:00");
    }
}
