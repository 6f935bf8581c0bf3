//! Date operators as predicates: a bound computed in UTC (`crate::dates`) compared with a
//! field of the type it has, so a `date` is compared as its midnight and a zone-less
//! `datetime` as the wall clock.

use chrono::{DateTime, NaiveTime, Utc};

use super::{Comparison, Predicate};
use crate::dates::DateBound;
use crate::schema::FieldType;
use crate::value::Value;

/// One bound of a date operator as a predicate on a field of type `ty`.
pub(super) fn date_bound(ty: FieldType, bound: &DateBound) -> Predicate {
    let (cmp, t) = match *bound {
        DateBound::Lt(t) => (Comparison::Lt, t),
        DateBound::Lte(t) => (Comparison::Lte, t),
        DateBound::Gt(t) => (Comparison::Gt, t),
        DateBound::Gte(t) => (Comparison::Gte, t),
        DateBound::Eq(t) => return date_equality(ty, t, false),
        DateBound::Ne(t) => return date_equality(ty, t, true),
    };
    match ty {
        FieldType::DateTimeNoTz => Predicate::Compare(cmp, Value::DateTimeNoTz(t.naive_utc())),
        FieldType::Date => {
            // A date is its midnight: compare against the first midnight at or after `t`.
            let day = t.date_naive();
            let midnight = t.time() == NaiveTime::MIN;
            let ceil = if midnight {
                day
            } else {
                day.succ_opt().unwrap_or(day)
            };
            match (cmp, midnight) {
                (Comparison::Gt, true) => Predicate::Compare(Comparison::Gt, Value::Date(day)),
                (Comparison::Lte, true) => Predicate::Compare(Comparison::Lte, Value::Date(day)),
                (Comparison::Gt | Comparison::Gte, _) => {
                    Predicate::Compare(Comparison::Gte, Value::Date(ceil))
                }
                _ => Predicate::Compare(Comparison::Lt, Value::Date(ceil)),
            }
        }
        _ => Predicate::Compare(cmp, Value::DateTime(t)),
    }
}

fn date_equality(ty: FieldType, t: DateTime<Utc>, negated: bool) -> Predicate {
    let value = match ty {
        FieldType::DateTimeNoTz => Value::DateTimeNoTz(t.naive_utc()),
        FieldType::Date if t.time() == NaiveTime::MIN => Value::Date(t.date_naive()),
        // No date equals an instant that is not a midnight.
        FieldType::Date if negated => return Predicate::IsNotNull,
        FieldType::Date => return Predicate::In(Vec::new()),
        _ => Value::DateTime(t),
    };
    if negated {
        Predicate::Compare(Comparison::Ne, value)
    } else {
        Predicate::Eq(value)
    }
}
