//! The compact time-zone table (`src/tzdata.bin`) against chrono-tz.
//!
//! `cargo test -p loyalty-rules --test tzdata` regenerates the table in
//! memory from chrono-tz, fails if the committed file differs (write it with
//! `LOYALTY_TZ_WRITE=1`), and compares every zone's offsets and local-time
//! resolution with chrono-tz around every transition since 1970.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, Offset, TimeZone, Timelike, Utc};
use loyalty_rules::tz::{Tz, CUTOFF};
use std::collections::HashMap;

/// chrono-tz lists transitions up to 2099; past this, offsets stay put.
const END: i64 = 4_133_980_800; // 2101-01-01

fn off(tz: chrono_tz::Tz, ts: i64) -> i32 {
    let t = DateTime::from_timestamp(ts, 0).unwrap().naive_utc();
    tz.offset_from_utc_datetime(&t).fix().local_minus_utc()
}

/// (offset at CUTOFF, [(instant, offset from then on)]) by probing every 12 hours and
/// bisecting each change to the second.
fn probe(tz: chrono_tz::Tz) -> (i32, Vec<(i64, i32)>) {
    const STEP: i64 = 86_400 / 2;
    let first = off(tz, CUTOFF);
    let mut prev = first;
    let mut out = Vec::new();
    let mut t = CUTOFF;
    while t < END {
        let next = t + STEP;
        let o = off(tz, next);
        if o != prev {
            // the change lies in (t, next]
            let (mut lo, mut hi) = (t, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if off(tz, mid) == prev {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            out.push((hi, o));
            prev = o;
        }
        t = next;
    }
    (first, out)
}

#[derive(Clone, Copy, PartialEq, Debug)]
struct Rule {
    month: u32,
    weekday: u32,
    day: u32,
    secs: i64,
    to: i32,
}

/// One transition as a rule would state it: the wall-clock date and time
/// (in the offset before it) and the offset after.
fn describe(utc: i64, before: i32, to: i32) -> (i32, Rule, u32) {
    let wall = DateTime::from_timestamp(utc + i64::from(before), 0)
        .unwrap()
        .naive_utc();
    let d = wall.date();
    let rule = Rule {
        month: d.month(),
        weekday: d.weekday().num_days_from_monday(),
        day: d.day(),
        secs: i64::from(wall.num_seconds_from_midnight()),
        to,
    };
    (d.year(), rule, d.day())
}

struct Encoded {
    explicit: Vec<(i64, i32)>,
    rules: Option<(i32, i32, usize, Vec<Rule>)>,
}

/// Split a zone's transitions into explicit ones and yearly rules for the
/// longest tail of years that follow one pattern.
fn encode(first: i32, trans: &[(i64, i32)]) -> Encoded {
    let mut described = Vec::new();
    let mut before = first;
    for &(t, o) in trans {
        described.push(describe(t, before, o));
        before = o;
    }
    let explicit_all = Encoded {
        explicit: trans.to_vec(),
        rules: None,
    };
    let Some(&(last_year, _, _)) = described.last() else {
        return explicit_all;
    };
    let year_of = |y: i32| -> Vec<(Rule, u32)> {
        described
            .iter()
            .filter(|(yy, _, _)| *yy == y)
            .map(|(_, r, d)| (*r, *d))
            .collect()
    };
    let template = year_of(last_year - 1);
    if template.is_empty() {
        return explicit_all;
    }
    let k = template.len();
    // allowed "on or after" days per rule
    let mut lo: Vec<u32> = template
        .iter()
        .map(|(_, d)| d.saturating_sub(6).max(1))
        .collect();
    let mut hi: Vec<u32> = template.iter().map(|(_, d)| *d).collect();
    let same = |a: &Rule, b: &Rule| {
        a.month == b.month && a.weekday == b.weekday && a.secs == b.secs && a.to == b.to
    };
    // the last year may stop early
    let last = year_of(last_year);
    if last.len() > k
        || last
            .iter()
            .zip(&template)
            .any(|((a, _), (b, _))| !same(a, b))
    {
        return explicit_all;
    }
    for (i, (_, d)) in last.iter().enumerate() {
        lo[i] = lo[i].max(d.saturating_sub(6));
        hi[i] = hi[i].min(*d);
    }
    let mut start = last_year - 1;
    loop {
        let y = start - 1;
        let this = year_of(y);
        if this.len() != k
            || this
                .iter()
                .zip(&template)
                .any(|((a, _), (b, _))| !same(a, b))
        {
            break;
        }
        let ok = this
            .iter()
            .enumerate()
            .all(|(i, (_, d))| lo[i].max(d.saturating_sub(6)) <= hi[i].min(*d));
        if !ok {
            break;
        }
        for (i, (_, d)) in this.iter().enumerate() {
            lo[i] = lo[i].max(d.saturating_sub(6));
            hi[i] = hi[i].min(*d);
        }
        start = y;
    }
    if last_year - start < 3 {
        return explicit_all;
    }
    let rules: Vec<Rule> = template
        .iter()
        .enumerate()
        .map(|(i, (r, _))| Rule {
            day: lo[i].max(1),
            ..*r
        })
        .collect();
    let n_explicit = described.iter().filter(|(y, _, _)| *y < start).count();
    Encoded {
        explicit: trans[..n_explicit].to_vec(),
        rules: Some((start, last_year, last.len(), rules)),
    }
}

fn uvar(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn ivar(out: &mut Vec<u8>, v: i64) {
    uvar(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn string(out: &mut Vec<u8>, s: &str) {
    uvar(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A zone's name, offset at the cutoff and transitions after it.
type Probed = (String, i32, Vec<(i64, i32)>);

struct Generated {
    blob: Vec<u8>,
    probed: Vec<Probed>,
}

fn generate() -> Generated {
    let mut zones: Vec<chrono_tz::Tz> = chrono_tz::TZ_VARIANTS.to_vec();
    zones.sort_by_key(|z| (z.name() != "UTC", z.name()));
    assert_eq!(zones[0].name(), "UTC");
    let probed: Vec<Probed> = zones
        .iter()
        .map(|z| {
            let (first, trans) = probe(*z);
            (z.name().to_string(), first, trans)
        })
        .collect();
    let mut offsets: Vec<i32> = Vec::new();
    let idx = |o: i32, offsets: &mut Vec<i32>| -> u64 {
        match offsets.iter().position(|x| *x == o) {
            Some(i) => i as u64,
            None => {
                offsets.push(o);
                (offsets.len() - 1) as u64
            }
        }
    };
    let mut histories: Vec<Vec<u8>> = Vec::new();
    let mut by_bytes: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut history_of = Vec::new();
    for (_, first, trans) in &probed {
        let e = encode(*first, trans);
        let mut h = Vec::new();
        uvar(&mut h, idx(*first, &mut offsets));
        uvar(&mut h, e.explicit.len() as u64);
        let mut at = CUTOFF;
        for &(t, o) in &e.explicit {
            uvar(&mut h, (t - at) as u64);
            at = t;
            uvar(&mut h, idx(o, &mut offsets));
        }
        match &e.rules {
            None => uvar(&mut h, 0),
            Some((start, end, last_count, rules)) => {
                uvar(&mut h, rules.len() as u64);
                uvar(&mut h, *start as u64);
                uvar(&mut h, *end as u64);
                uvar(&mut h, *last_count as u64);
                for r in rules {
                    h.push(r.month as u8);
                    h.push(r.weekday as u8);
                    h.push(r.day as u8);
                    ivar(&mut h, r.secs);
                    uvar(&mut h, idx(r.to, &mut offsets));
                }
            }
        }
        let n = histories.len();
        let i = *by_bytes.entry(h.clone()).or_insert(n);
        if i == n {
            histories.push(h);
        }
        history_of.push(i);
    }
    let mut blob = Vec::new();
    string(&mut blob, chrono_tz::IANA_TZDB_VERSION);
    uvar(&mut blob, offsets.len() as u64);
    for o in &offsets {
        ivar(&mut blob, i64::from(*o));
    }
    uvar(&mut blob, probed.len() as u64);
    for ((name, _, _), h) in probed.iter().zip(&history_of) {
        string(&mut blob, name);
        uvar(&mut blob, *h as u64);
    }
    uvar(&mut blob, histories.len() as u64);
    for h in &histories {
        uvar(&mut blob, h.len() as u64);
        blob.extend_from_slice(h);
    }
    Generated { blob, probed }
}

#[test]
fn table_is_current_and_matches_chrono_tz() {
    let g = generate();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tzdata.bin");
    if std::env::var_os("LOYALTY_TZ_WRITE").is_some() {
        std::fs::write(path, &g.blob).unwrap();
    }
    let committed = std::fs::read(path).unwrap();
    assert!(
        committed == g.blob,
        "src/tzdata.bin is stale: LOYALTY_TZ_WRITE=1 cargo test -p loyalty-rules --test tzdata"
    );
    assert_eq!(Tz::database_version(), chrono_tz::IANA_TZDB_VERSION);
    assert_eq!(Tz::names().count(), g.probed.len());

    let mut checked = 0u64;
    for (name, _, trans) in &g.probed {
        let ours = Tz::from_name(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(ours.name(), name);
        let theirs: chrono_tz::Tz = name.parse().unwrap();
        // offsets: at and around every transition, and every 10 days
        let mut instants: Vec<i64> = trans
            .iter()
            .flat_map(|(t, _)| [t - 3601, t - 1, *t, t + 1, t + 3600])
            .collect();
        instants.extend((CUTOFF..END).step_by(864_000));
        instants.push(END + 86_400 * 365 * 50);
        for ts in instants.into_iter().filter(|t| *t >= CUTOFF) {
            assert_eq!(ours.offset_at(ts), off(theirs, ts), "{name} at {ts}");
            checked += 1;
        }
        // local times: every 30 minutes from 3 hours before to 3 hours after
        // each transition (folds and gaps), as chrono-tz resolves them
        for (t, _) in trans.iter().filter(|(t, _)| *t >= CUTOFF + 2 * 86_400) {
            for k in -6..=6 {
                let local = DateTime::from_timestamp(t + k * 1800, 0)
                    .unwrap()
                    .naive_utc();
                let a = ours
                    .from_local_datetime(&local)
                    .map(|d| d.with_timezone(&Utc));
                let b = theirs
                    .from_local_datetime(&local)
                    .map(|d| d.with_timezone(&Utc));
                assert_eq!(a, b, "{name} local {local}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100_000, "{checked}");
}

#[test]
fn instants_before_1970_use_the_1970_offset() {
    let ny = Tz::from_name("America/New_York").unwrap();
    // 1969-07-20 20:17 UTC (New York was on daylight time: -4 h; the table
    // starts in 1970, when it was on standard time: -5 h)
    let t = Utc.with_ymd_and_hms(1969, 7, 20, 20, 17, 0).unwrap();
    assert_eq!(
        t.with_timezone(&ny).offset().fix().local_minus_utc(),
        -5 * 3600
    );
    let d = NaiveDate::from_ymd_opt(2026, 7, 1)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap();
    assert!(matches!(ny.from_local_datetime(&d), LocalResult::Single(_)));
}
