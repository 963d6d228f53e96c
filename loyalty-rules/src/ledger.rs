//! Point lots: earning, pending release, expiry, redemption and reversal.
//!
//! Invariant kept by every operation:
//! `lifetime_earned = available + pending + redeemed + expired + reversed`,
//! and the remaining points of available lots add up to `max(available, 0)`
//! (a negative `available` is a debt that new points pay off first).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::outcome::LedgerEntry;
use crate::state::{add_dec, CustomerState, Lot};

fn is_pending(l: &Lot, now: DateTime<Utc>) -> bool {
    l.pending_until.is_some_and(|p| p > now)
}

/// Spend order: soonest-expiring first, never-expiring last, then oldest.
fn spend_order(lots: &[Lot]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..lots.len()).collect();
    idx.sort_by_key(|&i| {
        let l = &lots[i];
        (l.expires_at.is_none(), l.expires_at, l.earned_at, l.id)
    });
    idx
}

/// The earliest release or expiry among the lots.
pub(crate) fn recompute_due(st: &mut CustomerState) {
    st.next_due = st
        .lots
        .iter()
        .flat_map(|l| [l.pending_until, l.expires_at])
        .flatten()
        .min();
}

/// Add a lot of `points` (> 0).
pub(crate) fn earn(st: &mut CustomerState, mut lot: Lot, now: DateTime<Utc>) {
    let p = lot.points;
    add_dec(&mut st.balances.lifetime_earned, p);
    lot.id = st.next_lot;
    st.next_lot += 1;
    if is_pending(&lot, now) {
        add_dec(&mut st.balances.pending, p);
    } else {
        lot.pending_until = None;
        make_available(st, &mut lot);
    }
    for t in [lot.pending_until, lot.expires_at].into_iter().flatten() {
        st.next_due = Some(st.next_due.map_or(t, |d| d.min(t)));
    }
    if st.lots.capacity() == 0 {
        // room for one: many customers earn once (a vector's first
        // allocation would hold four)
        st.lots.reserve_exact(1);
    }
    st.lots.push(lot);
}

/// Add `points` (> 0) to the newest lot, as `earn` would add a lot of its
/// own with the same times: the caller has checked that the newest lot was
/// made by the same event, with the same release and expiry times, and has
/// not been warned about. Balances, and what later releases, expiries,
/// redemptions and reversals do, are the same either way (such lots are
/// spent, released and expired together); the state holds one lot fewer.
pub(crate) fn earn_into_last(st: &mut CustomerState, points: Decimal, now: DateTime<Utc>) {
    let Some(mut lot) = st.lots.pop() else {
        return;
    };
    add_dec(&mut st.balances.lifetime_earned, points);
    add_dec(&mut lot.points, points);
    if is_pending(&lot, now) {
        add_dec(&mut st.balances.pending, points);
        add_dec(&mut lot.remaining, points);
    } else {
        // as a lot of its own would be made available
        let own = pay_in(st, points);
        add_dec(&mut lot.remaining, own);
    }
    st.lots.push(lot);
}

/// Move a lot's points into `available`, paying off any debt first.
fn make_available(st: &mut CustomerState, lot: &mut Lot) {
    lot.remaining = pay_in(st, lot.remaining);
}

/// Add `points` to `available`, paying off any debt first; what is left of
/// them for their lot (all of them when there was no debt).
fn pay_in(st: &mut CustomerState, points: Decimal) -> Decimal {
    let before = st.balances.available;
    add_dec(&mut st.balances.available, points);
    if before.is_sign_negative() {
        st.balances.available.max(Decimal::ZERO)
    } else {
        points
    }
}

/// Release pending lots and expire lots, as of `now`.
pub(crate) fn advance(
    st: &mut CustomerState,
    now: DateTime<Utc>,
    who: &Arc<str>,
    ledger: &mut Vec<LedgerEntry>,
    warn: Option<(u32, crate::ast::PeriodUnit, crate::tz::Tz)>,
) {
    if let Some((n, unit, tz)) = warn {
        // `warn N units before points expire`: once per lot
        let mut points = Decimal::ZERO;
        let mut first: Option<DateTime<Utc>> = None;
        for lot in st.lots.iter_mut() {
            let Some(exp) = lot.expires_at else { continue };
            if lot.warned || lot.remaining.is_zero() || exp <= now {
                continue;
            }
            if crate::history::sub_period(exp, tz, n, unit).is_some_and(|w| w <= now) {
                lot.warned = true;
                points += lot.remaining;
                first = Some(first.map_or(exp, |f| f.min(exp)));
            }
        }
        if let Some(expires_at) = first {
            ledger.push(LedgerEntry::ExpiryWarning {
                customer: who.clone(),
                points,
                expires_at,
            });
        }
    }
    // nothing to release or expire yet
    if st.next_due.is_none_or(|d| d > now) {
        return;
    }
    let mut released = Decimal::ZERO;
    let mut expired = Decimal::ZERO;
    let mut lots = std::mem::take(&mut st.lots);
    // Only the lots that are due change. Lots stay in earning order; the
    // due ones are handled in time order (a lot that is released and then
    // expires does both; which lot pays off a debt first is fixed).
    let mut due: Vec<(Option<DateTime<Utc>>, u64, usize)> = lots
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.pending_until.is_some_and(|p| p <= now) || l.expires_at.is_some_and(|e| e <= now)
        })
        .map(|(i, l)| (l.pending_until.or(l.expires_at), l.id, i))
        .collect();
    due.sort_unstable();
    for &(_, _, i) in &due {
        let lot = &mut lots[i];
        if lot.pending_until.is_some_and(|p| p <= now) {
            st.balances.pending -= lot.remaining;
            released += lot.remaining;
            lot.pending_until = None;
            make_available(st, lot);
        }
        if lot.expires_at.is_some_and(|e| e <= now) && !lot.remaining.is_zero() {
            if lot.pending_until.is_some() {
                st.balances.pending -= lot.remaining;
            } else {
                st.balances.available -= lot.remaining;
            }
            st.balances.expired += lot.remaining;
            expired += lot.remaining;
            lot.remaining = Decimal::ZERO;
        }
    }
    lots.retain(|l| !l.remaining.is_zero() || l.pending_until.is_some());
    st.lots = lots;
    recompute_due(st);
    if !released.is_zero() {
        ledger.push(LedgerEntry::Released {
            customer: who.clone(),
            points: released,
        });
    }
    if !expired.is_zero() {
        ledger.push(LedgerEntry::Expired {
            customer: who.clone(),
            points: expired,
        });
    }
}

/// Available balance as it will be at `now` (after releases and expiries),
/// without changing anything.
pub(crate) fn available_at(st: &CustomerState, now: DateTime<Utc>) -> Decimal {
    let mut avail = st.balances.available;
    for l in &st.lots {
        let released = l.pending_until.is_some_and(|p| p <= now);
        let expires = l.expires_at.is_some_and(|e| e <= now);
        if released && !expires {
            avail += l.remaining;
        } else if !released && l.pending_until.is_none() && expires {
            avail -= l.remaining;
        }
    }
    avail
}

/// Spend `points` from available lots, soonest-expiring first. The caller
/// has checked that enough is available.
pub(crate) fn redeem(st: &mut CustomerState, points: Decimal) {
    let mut need = points;
    for i in spend_order(&st.lots) {
        if need.is_zero() {
            break;
        }
        let l = &mut st.lots[i];
        if l.pending_until.is_some() {
            continue;
        }
        let take = l.remaining.min(need);
        l.remaining -= take;
        need -= take;
    }
    st.balances.available -= points;
    st.balances.redeemed += points;
    st.lots
        .retain(|l| !l.remaining.is_zero() || l.pending_until.is_some());
    recompute_due(st);
}

/// Take back `points`: from the given lots first (pending or available),
/// then from other available lots (soonest-expiring first); whatever is
/// left makes `available` negative.
pub(crate) fn reverse(st: &mut CustomerState, points: Decimal, prefer: &[u64]) {
    let mut need = points;
    let mut from_pending = Decimal::ZERO;
    let order: Vec<usize> =
        {
            let mut v: Vec<usize> = (0..st.lots.len())
                .filter(|&i| prefer.contains(&st.lots[i].id))
                .collect();
            v.extend(spend_order(&st.lots).into_iter().filter(|&i| {
                !prefer.contains(&st.lots[i].id) && st.lots[i].pending_until.is_none()
            }));
            v
        };
    for i in order {
        if need.is_zero() {
            break;
        }
        let l = &mut st.lots[i];
        let take = l.remaining.min(need);
        if take.is_zero() {
            continue;
        }
        l.remaining -= take;
        need -= take;
        if l.pending_until.is_some() {
            from_pending += take;
        }
    }
    st.balances.pending -= from_pending;
    st.balances.available -= points - from_pending;
    st.balances.reversed += points;
    st.lots
        .retain(|l| !l.remaining.is_zero() || l.pending_until.is_some());
    recompute_due(st);
}
