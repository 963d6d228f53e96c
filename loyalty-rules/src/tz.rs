//! Time zones: the IANA database in a compact form that every binding
//! shares, so local dates and times are identical in Rust, Python and WASM.
//!
//! `tzdata.bin` is generated from `chrono-tz` (its IANA version is in the
//! file's header) by `tests/tzdata.rs` (`LOYALTY_TZ_WRITE=1 cargo test -p
//! loyalty-rules --test tzdata` rewrites it; the same test fails when the
//! file is stale and compares every zone with `chrono-tz`). Per zone it holds
//! the UTC offset in effect at the cutoff ([`CUTOFF`], 1970-01-01), the
//! transitions after it until the zone's current rules began, and those rules
//! ("last Sunday of March at 01:00") with the years they run to. Instants
//! before the cutoff use the offset in effect at the cutoff: loyalty events
//! from before 1970 do not exist, and dropping a century of local mean times
//! and wartime rules is most of what makes the table small (68.6 KB, 15 KB
//! gzipped, instead of chrono-tz's ~900 KB in a WebAssembly module).
//!
//! [`Tz`] implements [`chrono::TimeZone`] with chrono-tz's resolution of
//! local times (single, ambiguous in a fold, none in a gap).

use std::fmt;
use std::sync::OnceLock;

use chrono::{
    Datelike, Days, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
};

static DATA: &[u8] = include_bytes!("tzdata.bin");

/// Start of the table: 1970-01-01T00:00:00Z.
pub const CUTOFF: i64 = 0;

/// A time zone of the IANA database, by name (`"Europe/London"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tz(u16);

/// The offset of a [`Tz`] at some instant.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TzOffset {
    tz: Tz,
    secs: i32,
}

impl fmt::Debug for Tz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Tz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for TzOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.fix(), f)
    }
}

impl fmt::Display for TzOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.fix(), f)
    }
}

impl Offset for TzOffset {
    fn fix(&self) -> FixedOffset {
        FixedOffset::east_opt(self.secs).unwrap_or(FixedOffset::east_opt(0).expect("zero offset"))
    }
}

/// One zone, expanded: the offset before the first transition, then
/// (UTC instant, offset from then on), ascending.
struct Zone {
    first: i32,
    trans: Box<[(i64, i32)]>,
}

struct Table {
    #[cfg_attr(not(feature = "unstable"), allow(dead_code))]
    version: &'static str,
    /// Zone names; `UTC` first, then sorted.
    names: Vec<&'static str>,
    /// Per zone: index into `histories`.
    history_of: Vec<u16>,
    /// Per history: where its record starts in `DATA`.
    histories: Vec<usize>,
    offsets: Vec<i32>,
    expanded: Vec<OnceLock<Zone>>,
}

struct Reader {
    at: usize,
}

impl Reader {
    fn byte(&mut self) -> u8 {
        let b = DATA.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn uvar(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 || shift >= 63 {
                return v;
            }
            shift += 7;
        }
    }
    fn ivar(&mut self) -> i64 {
        let u = self.uvar();
        ((u >> 1) as i64) ^ -((u & 1) as i64)
    }
    fn str(&mut self) -> &'static str {
        let n = self.uvar() as usize;
        let s = DATA.get(self.at..self.at + n).unwrap_or(&[]);
        self.at += n;
        std::str::from_utf8(s).unwrap_or("")
    }
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let mut r = Reader { at: 0 };
        let version = r.str();
        let n_off = r.uvar() as usize;
        let offsets = (0..n_off).map(|_| r.ivar() as i32).collect();
        let n_zones = r.uvar() as usize;
        let mut names = Vec::with_capacity(n_zones);
        let mut history_of = Vec::with_capacity(n_zones);
        for _ in 0..n_zones {
            names.push(r.str());
            history_of.push(r.uvar() as u16);
        }
        let n_hist = r.uvar() as usize;
        let mut histories = Vec::with_capacity(n_hist);
        for _ in 0..n_hist {
            let len = r.uvar() as usize;
            histories.push(r.at);
            r.at += len;
        }
        Table {
            version,
            names,
            history_of,
            histories,
            offsets,
            expanded: (0..n_hist).map(|_| OnceLock::new()).collect(),
        }
    })
}

/// The first `weekday` on or after day `day` of `month` in `year`.
fn weekday_on_or_after(year: i32, month: u32, day: u32, weekday: u32) -> Option<NaiveDate> {
    let d = NaiveDate::from_ymd_opt(year, month, day)?;
    let have = d.weekday().num_days_from_monday();
    d.checked_add_days(Days::new(u64::from((weekday + 7 - have) % 7)))
}

fn expand(t: &Table, h: usize) -> Zone {
    let mut r = Reader { at: t.histories[h] };
    let off = |r: &mut Reader| t.offsets.get(r.uvar() as usize).copied().unwrap_or(0);
    let first = off(&mut r);
    let n = r.uvar() as usize;
    let mut trans = Vec::with_capacity(n);
    let mut at = CUTOFF;
    for _ in 0..n {
        at += r.uvar() as i64;
        trans.push((at, off(&mut r)));
    }
    let n_rules = r.uvar() as usize;
    if n_rules > 0 {
        let start = r.uvar() as i32;
        let end = r.uvar() as i32;
        let last_count = r.uvar() as usize;
        let rules: Vec<(u32, u32, u32, i64, i32)> = (0..n_rules)
            .map(|_| {
                let month = u32::from(r.byte());
                let weekday = u32::from(r.byte());
                let day = u32::from(r.byte());
                let secs = r.ivar();
                (month, weekday, day, secs, off(&mut r))
            })
            .collect();
        let mut prev = trans.last().map_or(first, |x| x.1);
        for year in start..=end {
            let count = if year == end { last_count } else { rules.len() };
            for &(month, weekday, day, secs, to) in rules.iter().take(count) {
                let Some(d) = weekday_on_or_after(year, month, day, weekday) else {
                    continue;
                };
                let midnight = d
                    .and_hms_opt(0, 0, 0)
                    .map_or(0, |x| x.and_utc().timestamp());
                trans.push((midnight + secs - i64::from(prev), to));
                prev = to;
            }
        }
    }
    Zone {
        first,
        trans: trans.into_boxed_slice(),
    }
}

impl Tz {
    /// Coordinated Universal Time.
    pub const UTC: Tz = Tz(0);

    /// The zone's IANA name.
    pub fn name(self) -> &'static str {
        table()
            .names
            .get(usize::from(self.0))
            .copied()
            .unwrap_or("UTC")
    }

    /// Every zone's name (`UTC` first).
    pub fn names() -> impl Iterator<Item = &'static str> {
        table().names.iter().copied()
    }

    /// The IANA database version the table was made from.
    #[cfg_attr(not(feature = "unstable"), allow(dead_code))]
    pub fn database_version() -> &'static str {
        table().version
    }

    /// The zone called `name` (exactly, as in the IANA database).
    pub fn from_name(name: &str) -> Option<Tz> {
        let t = table();
        if name == "UTC" {
            return Some(Tz::UTC);
        }
        let rest = t.names.get(1..)?;
        rest.binary_search(&name).ok().map(|i| Tz(i as u16 + 1))
    }

    fn zone(self) -> &'static Zone {
        let t = table();
        let h = usize::from(t.history_of.get(usize::from(self.0)).copied().unwrap_or(0));
        t.expanded[h].get_or_init(|| expand(t, h))
    }

    /// Seconds east of UTC at the UTC instant `ts` (Unix seconds).
    pub fn offset_at(self, ts: i64) -> i32 {
        let z = self.zone();
        match z.trans.partition_point(|&(t, _)| t <= ts) {
            0 => z.first,
            i => z.trans[i - 1].1,
        }
    }

    fn at(self, secs: i32) -> TzOffset {
        TzOffset { tz: self, secs }
    }
}

impl std::str::FromStr for Tz {
    type Err = ();
    fn from_str(s: &str) -> Result<Tz, ()> {
        Tz::from_name(s).ok_or(())
    }
}

impl TimeZone for Tz {
    type Offset = TzOffset;

    fn from_offset(offset: &TzOffset) -> Tz {
        offset.tz
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<TzOffset> {
        // as chrono-tz: one offset that occurs on that day
        let first = self.offset_from_local_datetime(&local.and_time(chrono::NaiveTime::MIN));
        let last = self.offset_from_local_datetime(
            &local
                .and_hms_opt(23, 59, 59)
                .unwrap_or(local.and_time(chrono::NaiveTime::MIN)),
        );
        match (first, last) {
            (r @ LocalResult::Single(_), _) | (_, r @ LocalResult::Single(_)) => r,
            (LocalResult::Ambiguous(o, _), _) | (_, LocalResult::Ambiguous(o, _)) => {
                LocalResult::Single(o)
            }
            _ => LocalResult::None,
        }
    }

    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<TzOffset> {
        let ts = local.and_utc().timestamp();
        let z = self.zone();
        // spans whose UTC range can hold `local` under any offset (< 27 h)
        let span = |ts: i64| z.trans.partition_point(|&(t, _)| t <= ts);
        let (lo, hi) = (span(ts - 27 * 3600), span(ts + 27 * 3600));
        let mut found: [Option<i32>; 2] = [None, None];
        for i in lo..=hi {
            let off = if i == 0 { z.first } else { z.trans[i - 1].1 };
            let o = i64::from(off);
            let begins = i.checked_sub(1).map(|p| z.trans[p].0 + o);
            let ends = z.trans.get(i).map(|x| x.0 + o);
            if begins.is_none_or(|b| b <= ts) && ends.is_none_or(|e| ts < e) {
                if found[0].is_none() {
                    found[0] = Some(off);
                } else {
                    found[1] = Some(off);
                }
            }
        }
        match found {
            [Some(a), Some(b)] => LocalResult::Ambiguous(self.at(a), self.at(b)),
            [Some(a), None] => LocalResult::Single(self.at(a)),
            _ => LocalResult::None,
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> TzOffset {
        self.offset_from_utc_datetime(&utc.and_time(chrono::NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> TzOffset {
        self.at(self.offset_at(utc.and_utc().timestamp()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn names_resolve() {
        assert_eq!(Tz::from_name("UTC"), Some(Tz::UTC));
        let london = Tz::from_name("Europe/London").unwrap();
        assert_eq!(london.name(), "Europe/London");
        assert_eq!(Tz::from_name("europe/london"), None);
        assert_eq!(Tz::from_name("Mars/Olympus"), None);
        assert!(Tz::names().count() > 400);
    }

    #[test]
    fn london_summer_and_winter() {
        let london = Tz::from_name("Europe/London").unwrap();
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        let winter = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        assert_eq!(
            summer.with_timezone(&london).to_rfc3339(),
            "2026-07-01T13:00:00+01:00"
        );
        assert_eq!(
            winter.with_timezone(&london).to_rfc3339(),
            "2026-01-01T12:00:00+00:00"
        );
        // 2026-03-29 01:30 does not exist in London; 2026-10-25 01:30 happens twice
        let gap = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        assert_eq!(london.from_local_datetime(&gap), LocalResult::None);
        let fold = NaiveDate::from_ymd_opt(2026, 10, 25)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        assert!(matches!(
            london.from_local_datetime(&fold),
            LocalResult::Ambiguous(..)
        ));
    }
}
