//! Fast paths for the customer state's JSON (`serde(with = ...)` helpers).
//!
//! A state holds a lot and an award record per earning event, each with
//! times, amounts and names, so saving and loading states (snapshots, the
//! Python `states_table()` of a distributed back-test) is mostly these
//! values. The helpers write exactly the text of the types' own serde
//! impls, and read everything those impls read, faster:
//!
//! - times: `YYYY-MM-DDTHH:MM:SSZ` written and read directly (chrono's
//!   formatter and its relaxed RFC 3339 parser otherwise: fractions, other
//!   offsets, years outside 0-9999);
//! - amounts: `Decimal`'s text from the integer mantissa, without dividing
//!   a 96-bit array by ten per digit;
//! - names and event ids: read straight into one `Arc<str>` (serde's impl
//!   makes a `String` first, then copies it), shared through a small cache
//!   of recent texts, so a restored state's lots, award records and
//!   idempotency set hold one copy of each event id and rule name, as a
//!   replayed state does, instead of one each.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::state::small_hash;

/// `t` as chrono writes it, when that is `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_text(t: &DateTime<Utc>) -> Option<[u8; 20]> {
    let (y, d, s) = (t.year(), t.date_naive(), t.time());
    if !(0..=9999).contains(&y) || s.nanosecond() != 0 {
        return None;
    }
    let mut b = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, v: u32, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y as u32, 4);
    put(5, d.month(), 2);
    put(8, d.day(), 2);
    put(11, s.hour(), 2);
    put(14, s.minute(), 2);
    put(17, s.second(), 2);
    Some(b)
}

/// `YYYY-MM-DDTHH:MM:SSZ` read directly; None for any other text (left to
/// chrono, which gives the same instant for this shape).
fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let time = NaiveTime::from_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)?;
    Some(date.and_time(time).and_utc())
}

struct UtcVisitor;

impl Visitor<'_> for UtcVisitor {
    type Value = DateTime<Utc>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 formatted date and time string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<DateTime<Utc>, E> {
        match parse_utc(s) {
            Some(t) => Ok(t),
            None => s.parse::<DateTime<Utc>>().map_err(E::custom),
        }
    }
}

/// `DateTime<Utc>` fields.
pub(crate) mod utc {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        match utc_text(t) {
            // ASCII by construction
            Some(b) => s.serialize_str(std::str::from_utf8(&b).unwrap_or_default()),
            None => t.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_str(UtcVisitor)
    }
}

/// `Option<DateTime<Utc>>` fields (None is `null`, or the field left out
/// with `skip_serializing_if` and `default`).
pub(crate) mod utc_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&Time(t)),
            None => s.serialize_none(),
        }
    }

    struct Time<'a>(&'a DateTime<Utc>);
    impl Serialize for Time<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::utc::serialize(self.0, s)
        }
    }

    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<DateTime<Utc>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 formatted date and time string or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::utc::deserialize(d).map(Some)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_option(OptVisitor)
    }
}

/// `Decimal`'s text (as its `Display` and its serde impl write it): the
/// mantissa's digits with the point `scale` digits from the right, at least
/// one digit before the point, a `-` for any negative value (zero too).
/// 32 bytes hold any: 29 digits, a sign, a point and a leading zero.
pub(crate) fn decimal_text(d: &Decimal, buf: &mut [u8; 32]) -> usize {
    let scale = d.scale() as usize;
    let mut m = d.mantissa().unsigned_abs();
    // digits, last first
    let mut digits = [0u8; 32];
    let mut n = 0;
    while m != 0 && n < digits.len() {
        if let Ok(small) = u64::try_from(m) {
            let mut v = small;
            while v != 0 && n < digits.len() {
                digits[n] = b'0' + (v % 10) as u8;
                v /= 10;
                n += 1;
            }
            break;
        }
        digits[n] = b'0' + (m % 10) as u8;
        m /= 10;
        n += 1;
    }
    while n < scale && n < digits.len() {
        digits[n] = b'0';
        n += 1;
    }
    let mut len = 0;
    let mut push = |c: u8, len: &mut usize| {
        if let Some(slot) = buf.get_mut(*len) {
            *slot = c;
            *len += 1;
        }
    };
    if d.is_sign_negative() {
        push(b'-', &mut len);
    }
    let whole = n - scale;
    if whole == 0 {
        push(b'0', &mut len);
    }
    for i in (0..n).rev() {
        if i + 1 == scale {
            push(b'.', &mut len);
        }
        push(digits[i], &mut len);
    }
    len
}

/// `Decimal` fields: written as `Decimal`'s serde impl writes them (a
/// string), read by that impl.
pub(crate) mod dec {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 32];
        let n = decimal_text(d, &mut buf);
        // ASCII by construction
        s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        <Decimal as Deserialize>::deserialize(d)
    }
}

/// Slots of the per-thread cache of recent texts.
const SHARED_SLOTS: usize = 512;

thread_local! {
    static RECENT: RefCell<Vec<Option<Arc<str>>>> = const { RefCell::new(Vec::new()) };
}

/// One `Arc<str>` for `s`: the cached one if a recent text was the same.
/// Direct-mapped: a text takes the slot its hash picks.
pub(crate) fn shared(s: &str) -> Arc<str> {
    RECENT.with(|r| {
        let Ok(mut slots) = r.try_borrow_mut() else {
            return Arc::from(s);
        };
        if slots.is_empty() {
            slots.resize(SHARED_SLOTS, None);
        }
        let i = (small_hash(s) as usize) % SHARED_SLOTS;
        match &slots[i] {
            Some(a) if **a == *s => a.clone(),
            _ => {
                let a: Arc<str> = Arc::from(s);
                slots[i] = Some(a.clone());
                a
            }
        }
    })
}

/// Forget the cached texts of this thread.
#[cfg(test)]
fn forget_shared() {
    RECENT.with(|r| {
        if let Ok(mut slots) = r.try_borrow_mut() {
            *slots = Vec::new();
        }
    });
}

struct SharedVisitor;

impl Visitor<'_> for SharedVisitor {
    type Value = Arc<str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Arc<str>, E> {
        Ok(shared(s))
    }
}

/// `Arc<str>` fields: read into a shared text (written as a string).
pub(crate) mod text {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        d.deserialize_str(SharedVisitor)
    }
}

/// An `Arc<str>` read as a shared text, for collections of them.
pub(crate) struct Shared(pub Arc<str>);

impl<'de> Deserialize<'de> for Shared {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Shared, D::Error> {
        d.deserialize_str(SharedVisitor).map(Shared)
    }
}

/// A (name, amount) pair: written as serde writes a tuple, read with the
/// name shared.
pub(crate) struct Named(pub Arc<str>, pub Decimal);

impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Named, D::Error> {
        let (Shared(n), v) = <(Shared, Decimal)>::deserialize(d)?;
        Ok(Named(n, v))
    }
}

/// `SmallVec<[(Arc<str>, Decimal); N]>` and `Vec<(Arc<str>, Decimal)>`
/// fields: names shared, amounts written fast.
pub(crate) mod named {
    use super::*;
    use serde::ser::SerializeSeq;

    struct Pair<'a>(&'a Arc<str>, &'a Decimal);
    impl Serialize for Pair<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeTuple;
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&**self.0)?;
            t.serialize_element(&Dec(self.1))?;
            t.end()
        }
    }

    /// A `Decimal` written by [`super::dec`].
    pub(crate) struct Dec<'a>(pub &'a Decimal);
    impl Serialize for Dec<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::dec::serialize(self.0, s)
        }
    }

    pub fn serialize<'a, S, C>(pairs: C, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        C: IntoIterator<Item = &'a (Arc<str>, Decimal)>,
        C::IntoIter: ExactSizeIterator,
    {
        let it = pairs.into_iter();
        let mut seq = s.serialize_seq(Some(it.len()))?;
        for (n, v) in it {
            seq.serialize_element(&Pair(n, v))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D, C>(d: D) -> Result<C, D::Error>
    where
        D: Deserializer<'de>,
        C: FromIterator<(Arc<str>, Decimal)>,
    {
        let v: Vec<Named> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|Named(n, v)| (n, v)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The fast texts are the types' own: every decimal shape, and times
    /// with and without fractions, in and out of the four-digit years.
    #[test]
    fn texts_are_the_serde_impls() {
        let mut next = crate::state::test_rng(0x243f_6a88_85a3_08d3);
        let mut decs = vec![
            Decimal::ZERO,
            Decimal::ONE,
            Decimal::NEGATIVE_ONE,
            Decimal::MAX,
            Decimal::MIN,
            Decimal::new(0, 2),
            Decimal::new(5, 1),
            Decimal::new(-5, 3),
            Decimal::from_i128_with_scale((1i128 << 96) - 1, 28),
            Decimal::from_i128_with_scale(1, 28),
            Decimal::from_i128_with_scale(-(1i128 << 70), 10),
        ];
        let mut neg_zero = Decimal::new(0, 3);
        neg_zero.set_sign_negative(true);
        decs.push(neg_zero);
        for _ in 0..5000 {
            let r = next();
            let m = match r % 4 {
                0 => i128::from(r as u16),
                1 => i128::from(r as u32),
                2 => i128::from(r >> 1),
                _ => ((i128::from(next()) << 32) ^ i128::from(r)) & ((1i128 << 96) - 1),
            };
            let m = if r & 0x100 != 0 { -m } else { m };
            decs.push(Decimal::from_i128_with_scale(m, (next() % 29) as u32));
        }
        for d in &decs {
            let mut buf = [0u8; 32];
            let n = decimal_text(d, &mut buf);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), d.to_string());
            assert_eq!(
                serde_json::to_string(&named::Dec(d)).unwrap(),
                serde_json::to_string(d).unwrap()
            );
        }
        let mut times = vec![
            Utc.with_ymd_and_hms(2025, 1, 5, 22, 23, 16).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap()
                + chrono::Duration::milliseconds(5),
            Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap() + chrono::Duration::nanoseconds(1),
        ];
        for _ in 0..2000 {
            let secs = (next() % (300 * 365 * 86400)) as i64
                + Utc
                    .with_ymd_and_hms(1850, 1, 1, 0, 0, 0)
                    .unwrap()
                    .timestamp();
            times.push(DateTime::from_timestamp(secs, 0).unwrap());
        }
        struct T<'a>(&'a DateTime<Utc>);
        impl Serialize for T<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                utc::serialize(self.0, s)
            }
        }
        for t in &times {
            let fast = serde_json::to_string(&T(t)).unwrap();
            assert_eq!(fast, serde_json::to_string(t).unwrap());
            let mut de = serde_json::Deserializer::from_str(&fast);
            assert_eq!(utc::deserialize(&mut de).unwrap(), *t, "{fast}");
        }
    }

    /// Texts the fast reader leaves to chrono still read, and bad ones
    /// fail as chrono fails.
    #[test]
    fn other_time_texts() {
        let read = |s: &str| {
            let mut de = serde_json::Deserializer::from_str(s);
            utc::deserialize(&mut de).map_err(|e| e.to_string())
        };
        let chrono = |s: &str| serde_json::from_str::<DateTime<Utc>>(s).map_err(|e| e.to_string());
        for s in [
            "\"2025-01-05T22:23:16+01:00\"",
            "\"2025-01-05t22:23:16z\"",
            "\"2025-01-05 22:23:16Z\"",
            "\"2025-01-05T22:23:16.250Z\"",
            "\"2025-02-30T22:23:16Z\"",
            "\"2025-01-05T24:00:00Z\"",
            "\"2016-12-31T23:59:60Z\"",
            "\"2025-01-0xT22:23:16Z\"",
            "\"+12025-01-05T22:23:16Z\"",
            "\"\"",
            "17",
        ] {
            assert_eq!(read(s).is_ok(), chrono(s).is_ok(), "{s}");
            if let (Ok(a), Ok(b)) = (read(s), chrono(s)) {
                assert_eq!(a, b, "{s}");
            }
        }
    }

    #[test]
    fn shared_texts_are_one_allocation() {
        forget_shared();
        let a = shared("o123");
        let b = shared(&String::from("o123"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*shared("o124"), "o124");
        forget_shared();
        assert!(!Arc::ptr_eq(&a, &shared("o123")));
    }
}
