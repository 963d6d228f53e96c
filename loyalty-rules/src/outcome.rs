//! What evaluating an event produces: effects, and why each rule did or did
//! not fire. Plain serde data; decimals serialize as strings.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The result of evaluating one event against one customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The event's id.
    pub event: Arc<str>,
    /// The event's type.
    pub event_type: Arc<str>,
    /// The customer the event belongs to.
    pub customer: Arc<str>,
    /// Net spendable points for the event's customer: awards minus
    /// deductions plus multiplier extras, each already rounded.
    pub points: Decimal,
    /// Effects in evaluation order (multipliers last).
    pub effects: Vec<Effect>,
    /// Rules that failed at run time (e.g. division by zero); they did not fire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RuleError>,
    /// For the engine: `applied`, `duplicate` (seen before: nothing changed)
    /// or `rejected` (see `reason`: nothing changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Why the event was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Changes to point ledgers besides awards: releases, expiries,
    /// redemptions, reversals, tier changes by qualification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<LedgerEntry>,
    /// Why each rule for this event fired or not (only from `explain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Vec<Explanation>>,
}

impl Outcome {
    /// Nothing done for `event` (no status yet).
    pub(crate) fn empty(event: &crate::Event) -> Outcome {
        Outcome {
            event: event.id.clone(),
            event_type: event.type_name.clone(),
            customer: event.customer.clone(),
            points: Decimal::ZERO,
            effects: Vec::new(),
            errors: Vec::new(),
            explanation: None,
            status: None,
            reason: None,
            ledger: Vec::new(),
        }
    }

    /// `event` refused, for `reason`: nothing changed.
    pub(crate) fn rejected(event: &crate::Event, reason: String) -> Outcome {
        let mut o = Outcome::empty(event);
        o.status = Some(Status::Rejected);
        o.reason = Some(reason);
        o
    }

    /// The outcome as compact JSON.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What the engine did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Processed; the effects were applied.
    Applied,
    /// Its id was processed before; nothing changed.
    Duplicate,
    /// Refused (late, or a redemption without enough points); nothing changed.
    Rejected,
}

/// A ledger change made by the engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum LedgerEntry {
    /// Pending points became available.
    Released {
        /// Whose.
        customer: Arc<str>,
        /// How many.
        points: Decimal,
    },
    /// Points will expire soon (`warn N days before points expire`).
    ExpiryWarning {
        /// Whose.
        customer: Arc<str>,
        /// How many.
        points: Decimal,
        /// When the earliest of them expire.
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// Points expired.
    Expired {
        /// Whose.
        customer: Arc<str>,
        /// How many.
        points: Decimal,
    },
    /// Points spent on a redemption.
    Redeemed {
        /// Whose.
        customer: Arc<str>,
        /// How many.
        points: Decimal,
        /// For what.
        reward: Arc<str>,
    },
    /// Points taken back by a refund of an earlier event.
    Reversed {
        /// Whose.
        customer: Arc<str>,
        /// How many.
        points: Decimal,
        /// The refunded event.
        original: Arc<str>,
    },
    /// Effects of the `tier_change` rules run by a review in `advance_to`.
    Rules {
        /// Whose.
        customer: Arc<str>,
        /// The derived event (`review:<customer>:<time>`).
        event: Arc<str>,
        /// What the rules did.
        effects: Vec<Effect>,
    },
    /// A tier change by qualification or review.
    Tier {
        /// Whose.
        customer: Arc<str>,
        /// Before.
        from: Option<Arc<str>>,
        /// After.
        to: Option<Arc<str>>,
        /// `qualified` or `review`.
        reason: Arc<str>,
    },
}

/// One effect of a fired rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Points awarded (negative for a deduction).
    Award {
        /// The rule.
        rule: Arc<str>,
        /// Who gets them.
        customer: Arc<str>,
        /// Point kind (`points` unless the program declares others).
        kind: Arc<str>,
        /// How many, rounded by the program's policy.
        points: Decimal,
        /// Set when a limit, cap or budget cut the award.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capped: Option<Capped>,
    },
    /// Extra points from a multiplier.
    Multiply {
        /// The rule.
        rule: Arc<str>,
        /// Who gets them.
        customer: Arc<str>,
        /// Point kind.
        kind: Arc<str>,
        /// The factor.
        factor: Decimal,
        /// The extra points it added.
        points: Decimal,
    },
    /// A reward or voucher granted.
    Reward {
        /// The rule.
        rule: Arc<str>,
        /// Who gets it.
        customer: Arc<str>,
        /// The reward's name.
        reward: Arc<str>,
    },
    /// A tier change.
    Tier {
        /// The rule.
        rule: Arc<str>,
        /// Whose tier.
        customer: Arc<str>,
        /// Tier before (none if the customer had none).
        from: Option<Arc<str>>,
        /// Tier after.
        to: Arc<str>,
    },
    /// A tag added to the customer.
    Tag {
        /// The rule.
        rule: Arc<str>,
        /// Who.
        customer: Arc<str>,
        /// The tag.
        tag: Arc<str>,
    },
    /// A notification to send.
    Notify {
        /// The rule.
        rule: Arc<str>,
        /// To whom.
        customer: Arc<str>,
        /// The message.
        message: Arc<str>,
    },
    /// A customer attribute set.
    SetAttribute {
        /// The rule.
        rule: Arc<str>,
        /// Whose.
        customer: Arc<str>,
        /// Attribute name.
        attribute: Arc<str>,
        /// New value (JSON; decimals as strings).
        value: serde_json::Value,
    },
    /// Points to spend on a reward (auto-redeem). The engine spends them
    /// if the customer has enough available points, else notes it in `errors`.
    Redeem {
        /// The rule.
        rule: Arc<str>,
        /// Whose points.
        customer: Arc<str>,
        /// How many.
        points: Decimal,
        /// The reward bought.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reward: Option<Arc<str>>,
    },
    /// Points' expiry pushed back.
    ExtendExpiry {
        /// The rule.
        rule: Arc<str>,
        /// Whose points.
        customer: Arc<str>,
        /// By how many days (when given in days).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        days: Option<u32>,
        /// By how many months (when given in months).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        months: Option<u32>,
    },
}

/// How a cap or budget cut an award.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Capped {
    /// The limit, as written (`at most 1000 points per customer per month`).
    pub limit: Arc<str>,
    /// What the rule would have awarded.
    pub requested: Decimal,
    /// What the limit still allowed (and was awarded).
    pub remaining: Decimal,
}

/// A rule that failed while running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleError {
    /// The rule.
    pub rule: Arc<str>,
    /// What went wrong.
    pub message: String,
}

/// Why a rule fired or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The rule.
    pub rule: Arc<str>,
    /// Whether its effects apply.
    pub fired: bool,
    /// Why not: `condition_failed`, `inactive`, `stopped`, `group`, `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence saying why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The source text of the condition that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// 1-based line of the rule, or of the failed condition.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset of the end.
    pub end: usize,
    /// The values the failed condition saw.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<SeenValue>,
}

/// A value seen by a failed condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeenValue {
    /// The source text of the value.
    pub expr: String,
    /// The value, formatted (`$90.00`, `"gold"`, `not set`).
    pub value: String,
}
