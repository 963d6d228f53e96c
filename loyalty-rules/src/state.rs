//! Customer and campaign state: plain serde data the host can store
//! anywhere. JSON round trips are exact (decimals as strings).

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
pub use smallvec::SmallVec;

/// `a += b`, faster for the common case: two non-negative decimals of one
/// scale add as their mantissas do (exactly what `Decimal`'s addition gives
/// then, scale and all); anything else is left to `Decimal`.
#[inline]
pub(crate) fn add_dec(a: &mut Decimal, b: Decimal) {
    if a.scale() == b.scale() && a.is_sign_positive() && b.is_sign_positive() {
        // both mantissas are below 2^96: the sum fits an i128
        if let Ok(d) = Decimal::try_from_i128_with_scale(a.mantissa() + b.mantissa(), a.scale()) {
            *a = d;
            return;
        }
    }
    *a += b;
}

/// Point balances of the spendable kind. Always
/// `lifetime_earned = available + pending + redeemed + expired + reversed`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    /// Spendable now. Negative when refunds took back points already spent.
    pub available: Decimal,
    /// Earned but inside the pending (return) window.
    pub pending: Decimal,
    /// Everything ever earned.
    pub lifetime_earned: Decimal,
    /// Spent on redemptions.
    pub redeemed: Decimal,
    /// Lost to expiry.
    pub expired: Decimal,
    /// Taken back by refunds and `deduct` effects.
    pub reversed: Decimal,
}

/// A lot of points earned together, spent and expired as a unit: the
/// points one event earns with the same release and expiry times (rules
/// with their own expiry make lots of their own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// Sequence number within the customer.
    pub id: u64,
    /// Points earned.
    #[serde(with = "crate::codec::dec")]
    pub points: Decimal,
    /// Points not yet spent, expired or reversed.
    #[serde(with = "crate::codec::dec")]
    pub remaining: Decimal,
    /// When earned.
    #[serde(with = "crate::codec::utc")]
    pub earned_at: DateTime<Utc>,
    /// Pending until (None: available at once).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::codec::utc_opt"
    )]
    pub pending_until: Option<DateTime<Utc>>,
    /// Expires at (None: never).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::codec::utc_opt"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    /// The event that earned it.
    #[serde(deserialize_with = "crate::codec::text::deserialize")]
    pub event: Arc<str>,
    /// The rule that awarded it (the first of them, when several rules'
    /// points share the lot; the split by rule of a purchase's points is in
    /// [`EventAwards::by_rule`]).
    #[serde(deserialize_with = "crate::codec::text::deserialize")]
    pub rule: Arc<str>,
    /// An expiry warning was given for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warned: bool,
}

/// A reward granted to the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardGrant {
    /// The reward.
    pub reward: Arc<str>,
    /// When.
    pub at: DateTime<Utc>,
    /// By which event.
    pub event: Arc<str>,
}

/// What one event earned, kept so a refund can reverse exactly that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAwards {
    /// The event's id.
    #[serde(deserialize_with = "crate::codec::text::deserialize")]
    pub event: Arc<str>,
    /// The event's amount (for proportional refunds).
    #[serde(with = "crate::codec::dec")]
    pub amount: Decimal,
    /// How much of it has been refunded so far.
    #[serde(with = "crate::codec::dec")]
    pub refunded: Decimal,
    /// Spendable points it earned.
    #[serde(with = "crate::codec::dec")]
    pub points: Decimal,
    /// Of which reversed so far.
    #[serde(with = "crate::codec::dec")]
    pub reversed: Decimal,
    /// Lots it created (held inline: one event's lots are one or two).
    pub lots: SmallVec<[u64; 2]>,
    /// Points per rule (for budgets and caps; held inline for one rule).
    #[serde(with = "crate::codec::named")]
    pub by_rule: SmallVec<[(Arc<str>, Decimal); 1]>,
    /// Other point kinds it earned.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::codec::named"
    )]
    pub kinds: Vec<(Arc<str>, Decimal)>,
}

/// One day of history for an event type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayBucket {
    /// The local date.
    pub date: NaiveDate,
    /// Events that day.
    pub count: u64,
    /// Sums of the tracked fields (see `EventHistory::fields`).
    pub sums: Vec<Decimal>,
}

/// Compact history of one event type: totals, daily buckets for the
/// windows the program uses, and streaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventHistory {
    /// The event type (shared by all customers' states).
    pub event: Arc<str>,
    /// Events ever.
    pub total: u64,
    /// The tracked fields, in the order of `sums` (shared by all
    /// customers' states).
    pub fields: Arc<[Arc<str>]>,
    /// All-time sums of the tracked fields.
    pub totals: Vec<Decimal>,
    /// The latest event's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
    /// The one before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_at: Option<DateTime<Utc>>,
    /// Daily buckets, oldest first, only as far back as the program looks.
    pub days: Vec<DayBucket>,
    /// Consecutive local days with this event, ending at `streak_day`.
    pub streak_days: u32,
    /// Last day of the day streak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streak_day: Option<NaiveDate>,
    /// Consecutive weeks (Monday-Sunday) with this event.
    pub streak_weeks: u32,
    /// Monday of the last week of the week streak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streak_week: Option<NaiveDate>,
}

/// Points earned per day for one point kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsHistory {
    /// The kind (shared by all customers' states).
    pub kind: Arc<str>,
    /// Earned ever (net of reversals).
    pub total: Decimal,
    /// (local date, points) oldest first.
    pub days: Vec<(NaiveDate, Decimal)>,
}

/// A counter for one limit of a rule (or a program-wide cap).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodCounter {
    /// Start of the calendar period counted (None: ever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<NaiveDate>,
    /// Awards in the period.
    pub count: u64,
    /// Points in the period.
    pub points: Decimal,
}

/// Per-rule counters of one customer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCounters {
    /// The rule (shared by all customers' states).
    pub rule: Arc<str>,
    /// Times fired ever.
    pub fired: u64,
    /// Last time fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired: Option<DateTime<Utc>>,
    /// One counter per limit of the rule, in source order.
    pub limits: Vec<PeriodCounter>,
}

/// Everything the engine knows about one customer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    /// The customer's id.
    pub id: String,
    /// Profile attributes (`birthday`, `joined`, `referred_by` and the
    /// program's declared attributes), as in the customer JSON.
    #[serde(default)]
    pub profile: serde_json::Map<String, serde_json::Value>,
    /// Current tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Arc<str>>,
    /// Since when (or since the last review).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_since: Option<DateTime<Utc>>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Spendable point balances.
    #[serde(default)]
    pub balances: Balances,
    /// Lifetime totals of the other point kinds.
    #[serde(default)]
    pub kinds: Vec<(Arc<str>, Decimal)>,
    /// Point lots with points remaining.
    #[serde(default)]
    pub lots: Vec<Lot>,
    /// Next lot id.
    #[serde(default)]
    pub next_lot: u64,
    /// Earliest time a lot is released or expires (a cache; recomputed on restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due: Option<DateTime<Utc>>,
    /// Rewards granted.
    #[serde(default)]
    pub rewards: Vec<RewardGrant>,
    /// History per event type, in the program's order of event types
    /// (built-in types first), up to the last type the customer has had an
    /// event of: a type past the end has no history yet.
    #[serde(default)]
    pub history: Vec<EventHistory>,
    /// Points earned per day, per kind.
    #[serde(default)]
    pub points_history: Vec<PointsHistory>,
    /// Rule counters for limits, in the program's order of rules, up to the
    /// last rule that has fired for the customer: a rule past the end has
    /// not fired.
    #[serde(default)]
    pub counters: Vec<RuleCounters>,
    /// Program-wide cap counters, in source order.
    #[serde(default)]
    pub caps: Vec<PeriodCounter>,
    /// What each earning event earned (for refunds).
    #[serde(default)]
    pub awards: Vec<EventAwards>,
    /// Ids of processed events (idempotency).
    #[serde(default)]
    pub processed: EventIds,
    /// Time of the latest processed event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<DateTime<Utc>>,
}

/// Campaign-wide counters (budgets and `in total` limits), per rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUse {
    /// The rule.
    pub rule: String,
    /// Points awarded (net of refunds).
    pub points: Decimal,
    /// Awards made.
    pub awards: u64,
}

/// All state of an engine: every customer plus campaign counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Customers by id, sorted.
    pub customers: Vec<CustomerState>,
    /// Campaign counters.
    pub budgets: Vec<BudgetUse>,
    /// The engine's clock: the latest event or `advance_to` time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<DateTime<Utc>>,
}

/// Ids of the events a customer's state has processed (the idempotency
/// set). Serialized as a sorted JSON array of strings.
///
/// In memory a customer's first [`SMALL_IDS`] ids are a vector of
/// (hash, id) pairs searched by hash; past that, a hash set. Most customers
/// have a few dozen events, and a growing hash set would rehash at every
/// doubling (a quarter of the set's cost in a replay).
#[derive(Clone, Default)]
pub struct EventIds(IdsRepr);

/// How many ids the vector holds before the set becomes a hash set.
const SMALL_IDS: usize = 32;

#[derive(Clone)]
enum IdsRepr {
    Small(Vec<(u64, Arc<str>)>),
    Big(HashSet<Arc<str>, IdHash>),
}

impl Default for IdsRepr {
    fn default() -> IdsRepr {
        IdsRepr::Small(Vec::new())
    }
}

/// A quick hash of an id with a fixed seed, for bounded searches where
/// colliding ids cost little: the idempotency set's small vector (at most
/// [`SMALL_IDS`] long) and `EventBuilder`'s per-column text cache.
#[inline]
pub(crate) fn small_hash(id: &str) -> u64 {
    let mut h = IdHasher(0x2545_f491_4f6c_dd1d);
    h.write(id.as_bytes());
    h.finish()
}

impl EventIds {
    /// Whether `id` was processed.
    pub fn contains(&self, id: &str) -> bool {
        match &self.0 {
            IdsRepr::Small(v) => {
                let h = small_hash(id);
                v.iter().any(|(k, s)| *k == h && **s == *id)
            }
            IdsRepr::Big(set) => set.contains(id),
        }
    }
    /// Record `id`; false if it was there already.
    pub fn insert(&mut self, id: Arc<str>) -> bool {
        match &mut self.0 {
            IdsRepr::Small(v) => {
                let h = small_hash(&id);
                if v.iter().any(|(k, s)| *k == h && *s == id) {
                    return false;
                }
                if v.len() < SMALL_IDS {
                    if v.capacity() == 0 {
                        // room for one: many customers have one event;
                        // then for eight
                        v.reserve_exact(1);
                    } else if v.len() == 1 && v.capacity() == 1 {
                        v.reserve_exact(7);
                    }
                    v.push((h, id));
                    return true;
                }
                let mut set = HashSet::with_capacity_and_hasher(2 * SMALL_IDS, IdHash::default());
                set.extend(v.drain(..).map(|(_, s)| s));
                set.insert(id);
                self.0 = IdsRepr::Big(set);
                true
            }
            IdsRepr::Big(set) => set.insert(id),
        }
    }
    /// How many ids.
    pub fn len(&self) -> usize {
        match &self.0 {
            IdsRepr::Small(v) => v.len(),
            IdsRepr::Big(set) => set.len(),
        }
    }
    /// No ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The ids, sorted.
    pub fn sorted(&self) -> Vec<&str> {
        let mut v: Vec<&str> = match &self.0 {
            IdsRepr::Small(v) => v.iter().map(|(_, s)| &**s).collect(),
            IdsRepr::Big(set) => set.iter().map(|s| &**s).collect(),
        };
        v.sort_unstable();
        v
    }
}

/// Equal when they hold the same ids (whatever the representation).
impl PartialEq for EventIds {
    fn eq(&self, other: &EventIds) -> bool {
        self.len() == other.len() && self.sorted() == other.sorted()
    }
}

impl Eq for EventIds {}

impl std::fmt::Debug for EventIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.sorted()).finish()
    }
}

impl Serialize for EventIds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.sorted())
    }
}

impl<'de> Deserialize<'de> for EventIds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EventIds, D::Error> {
        // one allocation per id, shared with the lots and award records
        // read before it
        let v: Vec<crate::codec::Shared> = Vec::deserialize(d)?;
        let mut ids = EventIds::default();
        if v.len() > SMALL_IDS {
            ids.0 = IdsRepr::Big(HashSet::with_capacity_and_hasher(
                v.len(),
                IdHash::default(),
            ));
        }
        for crate::codec::Shared(s) in v {
            ids.insert(s);
        }
        Ok(ids)
    }
}

/// A seeded FxHash-style hasher for ids (customer and event ids): several
/// times faster than SipHash on short keys. The seed is random per map, so
/// collisions are not predictable from outside.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdHash(u64);

impl Default for IdHash {
    fn default() -> IdHash {
        IdHash(std::collections::hash_map::RandomState::new().hash_one(0x6c72_u64) | 1)
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // a final mix: hashbrown takes its control bits from the top 7 bits
        let h = self.0;
        (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        // the last 1-7 bytes as one word (with their count, so that "a"
        // and "a\0" differ): one round instead of one per byte
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            w[7] ^= rest.len() as u8;
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        self.0 = h;
    }
}

/// A xorshift generator of test cases (deterministic: the same seed, the
/// same cases).
#[cfg(test)]
pub(crate) fn test_rng(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

#[cfg(test)]
mod tests {
    use super::add_dec;

    /// The idempotency set is a set on both sides of the switch from its
    /// vector to its hash set: inserts report newness, lookups and the
    /// sorted JSON agree with a reference set, and equality ignores the
    /// representation and the order of insertion.
    #[test]
    fn event_ids_are_a_set_across_the_switch() {
        use super::{EventIds, SMALL_IDS};
        use std::collections::BTreeSet;
        use std::sync::Arc;
        for n in [0, 1, SMALL_IDS - 1, SMALL_IDS, SMALL_IDS + 1, 3 * SMALL_IDS] {
            let mut ids = EventIds::default();
            let mut want = BTreeSet::new();
            for i in 0..n {
                // every id twice, and ids that share their hash's first bytes
                for id in [format!("o{i}"), format!("o{}", i / 2)] {
                    let new = want.insert(id.clone());
                    assert_eq!(ids.insert(Arc::from(id.as_str())), new, "{n} {id}");
                }
            }
            assert_eq!(ids.len(), want.len());
            for i in 0..2 * n + 2 {
                let id = format!("o{i}");
                assert_eq!(ids.contains(&id), want.contains(&id), "{n} {id}");
            }
            assert!(!ids.contains("o"));
            let sorted: Vec<&str> = want.iter().map(|s| s.as_str()).collect();
            assert_eq!(ids.sorted(), sorted);
            let json = serde_json::to_string(&ids).unwrap();
            assert_eq!(json, serde_json::to_string(&sorted).unwrap());
            let back: EventIds = serde_json::from_str(&json).unwrap();
            assert_eq!(back, ids);
            // the same ids inserted in reverse order are equal
            let mut rev = EventIds::default();
            for id in want.iter().rev() {
                assert!(rev.insert(Arc::from(id.as_str())));
            }
            assert_eq!(rev, ids);
            if n > 0 {
                let mut other = rev.clone();
                other.insert(Arc::from("x"));
                assert_ne!(other, ids);
            }
        }
    }

    /// Ids that differ only in trailing zero bytes, or in one byte of the
    /// partial last word, hash apart (the tail is hashed as one word with
    /// its length mixed in).
    #[test]
    fn id_hash_tells_tails_apart() {
        use std::collections::HashSet;
        use std::hash::BuildHasher;
        let h = super::IdHash::default();
        let mut seen = HashSet::new();
        let mut n = 0;
        for len in 0..=17usize {
            let zeros = "\0".repeat(len);
            assert!(seen.insert(h.hash_one(zeros.as_str())), "{len} zeros");
            n += 1;
            for pos in 0..len {
                let mut b = vec![b'a'; len];
                b[pos] = b'b';
                let s = String::from_utf8(b).unwrap();
                assert!(seen.insert(h.hash_one(s.as_str())), "{s}");
                n += 1;
            }
        }
        assert_eq!(seen.len(), n);
    }
    use rust_decimal::Decimal;

    /// `add_dec` gives exactly what `+=` gives: value, scale and sign.
    #[test]
    fn add_dec_is_addition() {
        let mut next = super::test_rng(0x9e37_79b9_7f4a_7c15);
        let edge = [
            Decimal::ZERO,
            Decimal::NEGATIVE_ONE,
            Decimal::MAX,
            Decimal::MIN,
            Decimal::new(-0, 2),
            Decimal::from_i128_with_scale(-0, 3),
            Decimal::from_i128_with_scale((1i128 << 96) - 1, 0),
            Decimal::from_i128_with_scale((1i128 << 96) - 1, 28),
            Decimal::from_i128_with_scale(1, 28),
        ];
        let mut cases: Vec<Decimal> = edge.to_vec();
        for _ in 0..2000 {
            let r = next();
            let m = match r % 4 {
                0 => i128::from(r as u16),
                1 => i128::from(r as u32),
                2 => i128::from(r >> 1),
                _ => (i128::from(next()) << 32) ^ i128::from(r),
            };
            let m = if r & 0x100 != 0 { -m } else { m };
            let scale = (next() % 6) as u32 * if r & 0x200 != 0 { 5 } else { 1 };
            cases.push(Decimal::from_i128_with_scale(m, scale.min(28)));
        }
        let mut neg_zero = Decimal::ZERO;
        neg_zero.set_sign_negative(true);
        cases.push(neg_zero);
        for (i, a) in cases.iter().enumerate() {
            for b in cases.iter().skip(i % 7).step_by(37) {
                let Some(want) = a.checked_add(*b) else {
                    continue;
                };
                let mut got = *a;
                add_dec(&mut got, *b);
                assert_eq!(got.serialize(), want.serialize(), "{a} + {b}");
            }
        }
    }
}
