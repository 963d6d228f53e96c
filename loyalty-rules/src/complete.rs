//! Names available at a point of a (possibly broken) program, for editors.

use serde::Serialize;

use crate::schema::{builtin_events, customer_fields, item_fields, Calendar, Ty};

/// One autocompletion candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Completion {
    /// The text to insert.
    pub label: String,
    /// `keyword`, `event`, `field`, `attribute`, `tier`, `reward` or `calendar`.
    pub kind: &'static str,
    /// The type, for fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

const KEYWORDS: &[&str] = &[
    "rule",
    "on",
    "if",
    "then",
    "and",
    "or",
    "not",
    "is",
    "in",
    "award",
    "deduct",
    "multiply",
    "grant reward",
    "set tier",
    "tag customer",
    "notify",
    "extend expiry by",
    "stop processing",
    "priority",
    "in exclusive group",
    "in best group",
    "active from",
    "points",
    "per",
    "for every",
    "for each",
    "where",
    "any",
    "every",
    "no",
    "count of",
    "sum of",
    "between",
    "contains",
    "starts with",
    "ends with",
    "matches",
    "is set",
    "program",
    "currency",
    "timezone",
    "tiers",
    "rewards",
    "customer has",
    "event",
];

/// What the source declares, found line by line so that it works while the
/// program does not parse.
#[derive(Default)]
struct Decls {
    tiers: Vec<String>,
    rewards: Vec<String>,
    customer: Vec<(String, String)>,
    events: Vec<(String, Vec<(String, String)>)>,
}

fn scan(source: &str) -> Decls {
    let mut d = Decls::default();
    // which block field lines belong to: None, Some(None) = customer, Some(Some(i)) = event i
    let mut block: Option<Option<usize>> = None;
    for raw in source.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let lower = line.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("tiers") {
            d.tiers = rest
                .trim_start_matches(':')
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            block = None;
        } else if lower.starts_with("rewards") {
            d.rewards
                .extend(line.split('"').skip(1).step_by(2).map(str::to_string));
            block = None;
        } else if lower.starts_with("customer has") {
            block = Some(None);
        } else if let Some(rest) = lower.strip_prefix("event ") {
            let name = rest.split_whitespace().next().unwrap_or("").to_string();
            d.events.push((name, Vec::new()));
            block = Some(Some(d.events.len() - 1));
        } else if let (Some(b), Some((name, ty))) = (block, line.split_once(':')) {
            let name = name.trim().to_ascii_lowercase();
            let ty = ty.trim().to_string();
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.is_empty() {
                match b {
                    None => d.customer.push((name, ty)),
                    Some(i) => d.events[i].1.push((name, ty)),
                }
            }
        } else if !line.is_empty() {
            block = None;
        }
    }
    d
}

fn c(label: impl Into<String>, kind: &'static str, detail: Option<String>) -> Completion {
    Completion {
        label: label.into(),
        kind,
        detail,
    }
}

/// Byte offset where the identifier that ends `s` starts.
fn ident_start(s: &str) -> usize {
    s.char_indices()
        .rev()
        .find(|(_, ch)| !(ch.is_ascii_alphanumeric() || *ch == '_'))
        .map_or(0, |(i, ch)| i + ch.len_utf8())
}

pub(crate) fn completions(source: &str, offset: usize) -> Vec<Completion> {
    let mut at = offset.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    let before = &source[..at];
    let word_start = ident_start(before);
    let prefix = before[word_start..].to_ascii_lowercase();
    let decls = scan(source);
    let mut out: Vec<Completion> = Vec::new();

    if before[..word_start].ends_with('.') {
        let root_end = word_start - 1;
        let root_start = ident_start(&before[..root_end]);
        let root = before[root_start..root_end].to_ascii_lowercase();
        if root == "customer" {
            for f in customer_fields() {
                out.push(c(f.name.clone(), "field", Some(f.ty.name().into())));
            }
            for (n, t) in &decls.customer {
                out.push(c(n.clone(), "attribute", Some(t.clone())));
            }
        } else if let Some(ev) = builtin_events().iter().find(|e| e.name == root) {
            for f in &ev.fields {
                out.push(c(f.name.clone(), "field", Some(f.ty.name().into())));
            }
            for (name, fs) in &decls.events {
                if *name == root {
                    for (n, t) in fs {
                        out.push(c(n.clone(), "field", Some(t.clone())));
                    }
                }
            }
        } else if let Some((_, fs)) = decls.events.iter().find(|(n, _)| *n == root) {
            for f in ["id", "customer", "time"] {
                out.push(c(
                    f,
                    "field",
                    Some(if f == "time" {
                        Ty::DateTime.name().into()
                    } else {
                        "text".into()
                    }),
                ));
            }
            for (n, t) in fs {
                out.push(c(n.clone(), "field", Some(t.clone())));
            }
        } else {
            // a loop variable: basket item fields
            for f in item_fields() {
                out.push(c(f.name.clone(), "field", Some(f.ty.name().into())));
            }
        }
    } else {
        let prev: Vec<String> = before[..word_start]
            .split_whitespace()
            .rev()
            .take(3)
            .map(|w| w.to_ascii_lowercase())
            .collect();
        let prev1 = prev.first().map(String::as_str).unwrap_or("");
        let prev2 = prev.get(1).map(String::as_str).unwrap_or("");
        let events = || {
            let mut v: Vec<Completion> = builtin_events()
                .iter()
                .map(|e| c(e.name.clone(), "event", None))
                .collect();
            for (n, _) in &decls.events {
                if !v.iter().any(|x| x.label == *n) {
                    v.push(c(n.clone(), "event", None));
                }
            }
            v
        };
        if prev1 == "on" {
            out = events();
        } else if prev1 == "tier"
            || (prev2.ends_with("tier")
                && matches!(prev1, "is" | "=" | ">=" | "<=" | ">" | "<" | "not"))
        {
            out = decls
                .tiers
                .iter()
                .map(|t| c(t.clone(), "tier", None))
                .collect();
        } else if matches!(prev1, "reward" | "voucher" | "coupon" | "grant" | "give") {
            out = decls
                .rewards
                .iter()
                .map(|r| c(format!("\"{r}\""), "reward", None))
                .collect();
        } else if prev2 == "weekday" || prev1 == "weekday" {
            out = crate::schema::WEEKDAYS
                .iter()
                .map(|w| c(*w, "keyword", None))
                .collect();
        } else {
            out.extend(KEYWORDS.iter().map(|k| c(*k, "keyword", None)));
            out.extend(events());
            out.push(c("customer", "keyword", None));
            out.extend(Calendar::NAMES.iter().map(|n| c(*n, "calendar", None)));
        }
    }
    out.retain(|x| {
        x.label
            .trim_start_matches('"')
            .to_ascii_lowercase()
            .starts_with(&prefix)
    });
    let mut seen = std::collections::HashSet::new();
    out.retain(|x| seen.insert(x.label.clone()));
    out
}
