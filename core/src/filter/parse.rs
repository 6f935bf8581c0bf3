//! From NocoBase's JSON filter to the AST, checked against the collection: every path
//! resolved to a real field, every operand converted to that field's type, every problem a
//! 400 naming the path inside the filter.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value as Json};

use super::date_bounds::date_bound;
use super::path::{self, CollectionLookup, JoinPath, NoCollections};
use super::{
    Comparison, Condition, DateOperator, FieldRef, Filter, LikePattern, Operator, OperatorSupport,
    Predicate, TextMatch, ValueOperator,
};
use crate::dates::{date_condition, parse_date_operand};
use crate::error::{Error, Result};
use crate::schema::{Collection, FieldType};
use crate::value::Value;

/// What a filter is read against besides the schema: the request's time zone and clock,
/// for date operators, and the operators its data source runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterContext {
    /// The `X-Timezone` offset, applied to zone-less operands on `datetime` fields.
    pub timezone: Option<FixedOffset>,
    /// "Now", for relative operands such as `{"type": "today"}`.
    pub now: DateTime<Utc>,
    /// The operators the source runs; an `Arc` because it is the source's, shared by
    /// every request.
    pub operators: std::sync::Arc<OperatorSupport>,
}

impl Default for FilterContext {
    fn default() -> Self {
        Self {
            timezone: None,
            now: Utc::now(),
            operators: std::sync::Arc::default(),
        }
    }
}

/// The most values (operands and list items together) one filter may hold. Each becomes a
/// bound parameter, and SQLite takes at most 32,766 in one statement; a filter this large
/// is a mistake or an attack, not a query.
pub const MAX_FILTER_VALUES: usize = 10_000;

/// Whether `json` holds at most `budget` scalar values, counting down as it goes so a huge
/// filter is refused after `budget` steps, not after a full walk.
fn within_value_budget(json: &Json, budget: &mut usize) -> bool {
    match json {
        Json::Array(items) => items.iter().all(|x| within_value_budget(x, budget)),
        Json::Object(map) => map.values().all(|x| within_value_budget(x, budget)),
        _ => match budget.checked_sub(1) {
            Some(left) => {
                *budget = left;
                true
            }
            None => false,
        },
    }
}

/// Checks a JSON filter against `collection` and builds its AST, in UTC at the current time.
///
/// Returns `None` for a filter with no condition at all (`{}`, `{"$and": []}`): such a
/// filter constrains nothing, and `update`/`destroy` refuse it as "no filter".
pub fn parse_filter(collection: &Collection, filter: &Json) -> Result<Option<Filter>> {
    parse_filter_in_context(collection, filter, &FilterContext::default())
}

/// [`parse_filter`] with the request's time zone and clock; paths stay inside `collection`.
pub fn parse_filter_in_context(
    collection: &Collection,
    filter: &Json,
    context: &FilterContext,
) -> Result<Option<Filter>> {
    parse_filter_across(collection, filter, context, &NoCollections)
}

/// [`parse_filter_in_context`] where paths may cross associations (`author.name`,
/// `tags.$exists`) into the collections `lookup` finds.
pub fn parse_filter_across(
    collection: &Collection,
    filter: &Json,
    context: &FilterContext,
    lookup: &dyn CollectionLookup,
) -> Result<Option<Filter>> {
    parse_filter_at(collection, filter, context, lookup, "filter")
}

/// [`parse_filter_across`] for a filter found at `at` inside a larger one (the part of
/// `{"author.name": …}` read against `author`'s collection), so errors name the path as
/// the request wrote it.
pub(crate) fn parse_filter_at(
    collection: &Collection,
    filter: &Json,
    context: &FilterContext,
    lookup: &dyn CollectionLookup,
    at: &str,
) -> Result<Option<Filter>> {
    let object = match filter {
        Json::Null => return Ok(None),
        Json::Object(map) => map,
        other => {
            return Err(Error::bad_request(format!(
                "Invalid filter: expected a JSON object, got {other}"
            ))
            .with_message_id("filter-not-object", vec![("got", other.to_string())]));
        }
    };
    let mut budget = MAX_FILTER_VALUES;
    if !within_value_budget(filter, &mut budget) {
        return Err(Error::bad_request(format!(
            "Invalid filter: it holds more than {MAX_FILTER_VALUES} values; \
             split the request or filter on a relation instead"
        )));
    }
    let parser = Parser {
        collection,
        context,
        lookup,
    };
    Ok(simplify(Filter::And(parser.object(object, at, &[])?)))
}

/// Builds the filter that `filterByTk` means: the key equals the value, or is in the list.
pub fn key_filter(collection: &Collection, filter_by_tk: &Json) -> Result<Option<Filter>> {
    key_filter_for(collection, filter_by_tk, &OperatorSupport::default())
}

/// [`key_filter`] for a source that runs only `operators`: a value means `$eq` and a list
/// `$in`, and each must be one the source runs.
pub fn key_filter_for(
    collection: &Collection,
    filter_by_tk: &Json,
    operators: &OperatorSupport,
) -> Result<Option<Filter>> {
    let implied = match filter_by_tk {
        Json::Array(_) => ValueOperator::In,
        _ => ValueOperator::Eq,
    };
    operators.check(Operator::Value(implied), "filterByTk")?;
    let key = collection.single_key().ok_or_else(|| {
        Error::bad_request(format!(
            "filterByTk is not supported for collection {} (it has no single primary key)",
            collection.name()
        ))
    })?;
    let field = FieldRef::new(key);
    let predicate = match filter_by_tk {
        Json::Null => return Ok(None),
        Json::Array(items) if items.is_empty() => return Ok(None),
        Json::Array(items) => Predicate::In(
            items
                .iter()
                .map(|v| Value::coerce(key.field_type, v, "filterByTk"))
                .collect::<Result<_>>()?,
        ),
        Json::Object(_) => {
            return Err(Error::bad_request(format!(
                "filterByTk: collection {} has a single key {:?}; pass its value, not an object",
                collection.name(),
                key.name
            )));
        }
        scalar => Predicate::Eq(Value::coerce(key.field_type, scalar, "filterByTk")?),
    };
    Ok(Some(Filter::Condition(Condition { field, predicate })))
}

/// Drops empty groups and unwraps one-element groups.
fn simplify(filter: Filter) -> Option<Filter> {
    match filter {
        Filter::Condition(c) => Some(Filter::Condition(c)),
        Filter::And(items) | Filter::Or(items) if items.is_empty() => None,
        Filter::And(items) => group(items, Filter::And),
        Filter::Or(items) => group(items, Filter::Or),
    }
}

fn group(items: Vec<Filter>, make: fn(Vec<Filter>) -> Filter) -> Option<Filter> {
    let mut kept: Vec<Filter> = items.into_iter().filter_map(simplify).collect();
    match kept.len() {
        0 => None,
        1 => kept.pop(),
        _ => Some(make(kept)),
    }
}

struct Parser<'c> {
    collection: &'c Collection,
    context: &'c FilterContext,
    lookup: &'c dyn CollectionLookup,
}

impl Parser<'_> {
    /// The members of one filter object, AND-ed. `prefix` is the path walked so far.
    fn object(&self, map: &Map<String, Json>, at: &str, prefix: &[&str]) -> Result<Vec<Filter>> {
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            let here = format!("{at}.{key}");
            match key.as_str() {
                "$and" | "$or" if prefix.is_empty() => {
                    let members = self.group_members(value, &here)?;
                    out.push(if key == "$and" {
                        Filter::And(members)
                    } else {
                        Filter::Or(members)
                    });
                }
                // Read as a path, `{"author": {"$or": …}}` failed as an unknown field
                // "author", which is a relation.
                "$and" | "$or" => {
                    return Err(Error::bad_request(format!(
                        "{here}: {key} groups whole conditions and cannot follow a field; \
                         write {{\"{key}\": [{{\"{}.…\": …}}, …]}}",
                        prefix.join(".")
                    )));
                }
                _ => {
                    let mut path: Vec<&str> = prefix.to_vec();
                    path.extend(key.split('.'));
                    out.extend(self.path(&path, value, &here)?);
                }
            }
        }
        Ok(out)
    }

    fn group_members(&self, value: &Json, at: &str) -> Result<Vec<Filter>> {
        match value {
            Json::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Json::Object(map) => {
                        Ok(Filter::And(self.object(map, &format!("{at}.{i}"), &[])?))
                    }
                    other => Err(Error::bad_request(format!(
                        "{at}.{i}: expected a filter object, got {other}"
                    ))),
                })
                .collect(),
            Json::Object(map) => Ok(vec![Filter::And(self.object(map, at, &[])?)]),
            other => Err(Error::bad_request(format!(
                "{at}: expected an array of filter objects, got {other}"
            ))),
        }
    }

    /// A path (`title`, `title.$eq`) with its value (an operand, or an object continuing it).
    fn path(&self, path: &[&str], value: &Json, at: &str) -> Result<Vec<Filter>> {
        let (op, field_path) = match path.split_last() {
            Some((last, field_path)) if last.starts_with('$') => {
                let op = Operator::parse(last).ok_or_else(|| unknown_operator(last, at))?;
                (op, field_path)
            }
            _ => match value {
                Json::Object(map) if map.is_empty() => {
                    return Err(Error::bad_request(format!(
                        "{at}: empty condition; give a value or an operator such as {{\"$eq\": …}}"
                    )));
                }
                Json::Object(map) => return self.object(map, at, path),
                // `{"title": "a"}` is `$eq`, and the source must run that too.
                _ => (Operator::Value(ValueOperator::Eq), path),
            },
        };
        // The one place a filter's operators meet the source's: every operator, written
        // or implied, passes here before any field or operand is read.
        self.context.operators.check(op, at)?;
        let op = match op {
            Operator::Value(op) => op,
            Operator::Date(op) => {
                let field = self.field(field_path, at)?;
                return Ok(vec![self.date(op, field, value, at)?]);
            }
        };
        if matches!(op, ValueOperator::Exists | ValueOperator::NotExists)
            && let Some(key) = self.association_key(field_path, at)?
        {
            // `tags.$exists`: the association has a row, i.e. its key is not NULL.
            return Ok(vec![Filter::Condition(Condition {
                predicate: operator(op, &key, value, at)?,
                field: key,
            })]);
        }
        let field = self.field(field_path, at)?;
        Ok(vec![Filter::Condition(Condition {
            predicate: operator(op, &field, value, at)?,
            field,
        })])
    }

    /// A date operator as comparisons typed for the field: instants for `datetime`,
    /// wall-clock times for `datetimeNoTz`, calendar dates for `date`.
    fn date(&self, op: DateOperator, field: FieldRef, operand: &Json, at: &str) -> Result<Filter> {
        if !matches!(
            field.field_type,
            FieldType::DateTime | FieldType::DateTimeNoTz | FieldType::Date
        ) {
            return Err(Error::bad_request(format!(
                "{at}: date operators apply to date and datetime fields; {:?} is {}",
                field.name, field.field_type
            )));
        }
        // X-Timezone applies to zone-aware fields only; dates and wall-clock times are
        // read in UTC, as NocoBase does.
        let tz = (field.field_type == FieldType::DateTime)
            .then_some(self.context.timezone)
            .flatten();
        let operand =
            parse_date_operand(operand, tz, self.context.now).map_err(|e| e.context(at))?;
        let condition = date_condition(op, &operand).map_err(|e| e.context(at))?;
        let items = condition
            .bounds
            .iter()
            .map(|b| {
                Filter::Condition(Condition {
                    field: field.clone(),
                    predicate: date_bound(field.field_type, b),
                })
            })
            .collect();
        Ok(if condition.any {
            Filter::Or(items)
        } else {
            Filter::And(items)
        })
    }

    fn field(&self, path: &[&str], at: &str) -> Result<FieldRef> {
        let unknown = |name: &str, collection: &Collection| {
            Error::bad_request(format!(
                "{at}: unknown field {name:?} in collection {}",
                collection.name()
            ))
            .with_message_id(
                "filter-unknown-field",
                vec![
                    ("path", at.to_owned()),
                    ("field", format!("{name:?}")),
                    ("collection", collection.name().to_owned()),
                ],
            )
        };
        match path {
            [] => Err(Error::bad_request(format!(
                "{at}: an operator needs a field before it"
            ))),
            [name] => self
                .collection
                .field(name)
                .filter(|f| !f.hidden)
                .map(FieldRef::new)
                .ok_or_else(|| unknown(name, self.collection)),
            [associations @ .., name] => {
                let (via, target) = self.walk(associations, at)?;
                target
                    .field(name)
                    .filter(|f| !f.hidden)
                    .map(|f| FieldRef::through(f, std::sync::Arc::new(via)))
                    .ok_or_else(|| unknown(name, &target))
            }
        }
    }

    /// The target key of the association `path` ends in, for `$exists`; `None` when the
    /// path ends in an attribute instead.
    fn association_key(&self, path: &[&str], at: &str) -> Result<Option<FieldRef>> {
        let Some(last) = path.last() else {
            return Ok(None);
        };
        let parent = match path.len() {
            1 => None,
            _ => Some(self.walk(&path[..path.len() - 1], at)?.1),
        };
        if parent
            .as_deref()
            .unwrap_or(self.collection)
            .association(last)
            .is_none()
        {
            return Ok(None);
        }
        let (via, target) = self.walk(path, at)?;
        let key = target.primary_key().next().ok_or_else(|| {
            Error::bad_request(format!(
                "{at}: collection {} has no primary key to test for existence",
                target.name()
            ))
        })?;
        Ok(Some(FieldRef::through(key, std::sync::Arc::new(via))))
    }

    fn walk(
        &self,
        associations: &[&str],
        at: &str,
    ) -> Result<(JoinPath, std::sync::Arc<Collection>)> {
        if self.collection.primary_key().len() == 0 {
            return Err(Error::bad_request(format!(
                "{at}: collection {} has no primary key, so it cannot be filtered through associations",
                self.collection.name()
            )));
        }
        path::walk(self.collection, associations, self.lookup).map_err(|e| {
            Error::bad_request(match e {
                path::WalkError::NotAnAssociation {
                    segment,
                    collection,
                    depth: 0,
                } => format!(
                    "{at}: {segment:?} is not an association of collection {collection}; only its fields can be filtered"
                ),
                path::WalkError::NotAnAssociation {
                    segment,
                    collection,
                    ..
                } => format!(
                    "{at}: {segment:?} is neither an association nor the last segment in collection {collection}"
                ),
                path::WalkError::MissingTarget {
                    association,
                    target,
                } => format!(
                    "{at}: association {association} points at {target}, which this data source does not have"
                ),
                path::WalkError::CrossSource {
                    association,
                    source,
                } => format!(
                    "{at}: {association} is a relation to data source {source}; filtering or sorting through it is not supported yet"
                ),
                path::WalkError::Empty => format!("{at}: empty path"),
            })
        })
    }
}

/// The error for an operator no table names; one that looks like a date operator says so.
fn unknown_operator(name: &str, at: &str) -> Error {
    if name.starts_with("$date") {
        return crate::dates::unknown_operator(name).context(at);
    }
    let supported = Operator::names().collect::<Vec<&str>>().join(" ");
    Error::bad_request(format!(
        "{at}: unknown operator {name:?}; supported: {supported}"
    ))
    .with_message_id(
        "filter-unknown-operator",
        vec![
            ("path", at.to_owned()),
            ("operator", format!("{name:?}")),
            ("supported", supported),
        ],
    )
}

/// The elements an array operator compares with: JSON scalars, typed by their JSON type
/// (arrays hold scalars of any type, so the field type says nothing about them).
fn array_elements(operand: &Json, at: &str) -> Result<Vec<Value>> {
    let one = |i: Option<usize>, v: &Json| -> Result<Value> {
        let here = i.map_or_else(|| at.to_owned(), |i| format!("{at}.{i}"));
        match v {
            Json::String(s) => Ok(Value::Text(s.clone())),
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::Number(n) => Ok(n
                .as_i64()
                .map(Value::Int)
                .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0)))),
            other => Err(Error::bad_request(format!(
                "{here}: array operators compare scalars, got {other}"
            ))),
        }
    };
    match operand {
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| one(Some(i), v))
            .collect(),
        Json::Null => Ok(Vec::new()),
        scalar => Ok(vec![one(None, scalar)?]),
    }
}

fn operator(op: ValueOperator, field: &FieldRef, operand: &Json, at: &str) -> Result<Predicate> {
    let ty = field.field_type;
    let scalar = |v: &Json| -> Result<Value> {
        match v {
            Json::Array(_) | Json::Object(_) if !matches!(ty, FieldType::Json) => Err(
                Error::bad_request(format!("{at}: expected a single value, got {v}")),
            ),
            _ => Value::coerce(ty, v, at),
        }
    };
    let list = |v: &Json| -> Result<Vec<Value>> {
        match v {
            Json::Null => Ok(Vec::new()),
            Json::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    if item.is_null() {
                        Err(Error::bad_request(format!(
                            "{at}.{i}: null is not allowed in a list; use $empty or $eq null"
                        )))
                    } else {
                        Value::coerce(ty, item, &format!("{at}.{i}"))
                    }
                })
                .collect(),
            other => Ok(vec![scalar(other)?]),
        }
    };
    let texts = |v: &Json| -> Result<Vec<String>> {
        match v {
            Json::String(s) => Ok(vec![s.clone()]),
            Json::Number(n) => Ok(vec![n.to_string()]),
            Json::Array(items) => items
                .iter()
                .map(|item| match item {
                    Json::String(s) => Ok(s.clone()),
                    Json::Number(n) => Ok(n.to_string()),
                    other => Err(Error::bad_request(format!(
                        "{at}: expected strings, got {other}"
                    ))),
                })
                .collect(),
            other => Err(Error::bad_request(format!(
                "{at}: expected a string or a list of strings, got {other}"
            ))),
        }
    };
    let pair = |v: &Json| -> Result<(Value, Value)> {
        match v {
            Json::Array(items) if items.len() == 2 => Ok((scalar(&items[0])?, scalar(&items[1])?)),
            other => Err(Error::bad_request(format!(
                "{at}: expected a two-element array [from, to], got {other}"
            ))),
        }
    };
    let truthy = |v: &Json| matches!(v, Json::Bool(true)) || v.as_str() == Some("true");
    let text_op = |mode, negated| -> Result<Predicate> {
        if ty == FieldType::Json || ty == FieldType::Array {
            return Err(Error::bad_request(format!(
                "{at}: text operators do not apply to {ty} field {:?}",
                field.name
            )));
        }
        if operand.is_null() {
            return Ok(if negated {
                Predicate::IsNotNull
            } else {
                Predicate::IsNull
            });
        }
        let operands = texts(operand)?;
        if operands.is_empty() {
            // Any of none matches nothing; none of none, every value (NULL excluded, as
            // for every negated text match). Said here once, so no backend sees an empty
            // list and every backend agrees.
            return Ok(if negated {
                Predicate::IsNotNull
            } else {
                Predicate::In(Vec::new())
            });
        }
        Ok(Predicate::Text {
            mode,
            operands,
            negated,
        })
    };

    Ok(match op {
        ValueOperator::Eq => match operand {
            Json::Null => Predicate::IsNull,
            Json::Array(_) if ty != FieldType::Json => Predicate::In(list(operand)?),
            _ => Predicate::Eq(scalar(operand)?),
        },
        ValueOperator::Ne => match operand {
            Json::Null => Predicate::IsNotNull,
            Json::Array(_) if ty != FieldType::Json => Predicate::NotIn(list(operand)?),
            _ => Predicate::Ne(scalar(operand)?),
        },
        ValueOperator::In => Predicate::In(list(operand)?),
        ValueOperator::NotIn => Predicate::NotIn(list(operand)?),
        ValueOperator::Gt | ValueOperator::Gte | ValueOperator::Lt | ValueOperator::Lte => {
            let cmp = match op {
                ValueOperator::Gt => Comparison::Gt,
                ValueOperator::Gte => Comparison::Gte,
                ValueOperator::Lt => Comparison::Lt,
                _ => Comparison::Lte,
            };
            if operand.is_null() {
                return Err(Error::bad_request(format!(
                    "{at}: cannot compare with null; use $empty or $notEmpty"
                )));
            }
            Predicate::Compare(cmp, scalar(operand)?)
        }
        ValueOperator::Between => {
            let (a, b) = pair(operand)?;
            Predicate::Between(a, b)
        }
        ValueOperator::NotBetween => {
            let (a, b) = pair(operand)?;
            Predicate::NotBetween(a, b)
        }
        ValueOperator::Includes => text_op(TextMatch::Contains, false)?,
        ValueOperator::NotIncludes => text_op(TextMatch::Contains, true)?,
        ValueOperator::StartsWith => text_op(TextMatch::StartsWith, false)?,
        ValueOperator::NotStartsWith => text_op(TextMatch::StartsWith, true)?,
        ValueOperator::EndWith => text_op(TextMatch::EndsWith, false)?,
        ValueOperator::NotEndWith => text_op(TextMatch::EndsWith, true)?,
        ValueOperator::Like
        | ValueOperator::NotLike
        | ValueOperator::ILike
        | ValueOperator::NotILike => {
            if ty == FieldType::Json || ty == FieldType::Array {
                return Err(Error::bad_request(format!(
                    "{at}: text operators do not apply to {ty} field {:?}",
                    field.name
                )));
            }
            let pattern = match operand {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                other => {
                    return Err(Error::bad_request(format!(
                        "{at}: expected a pattern string such as \"%rust%\", got {other}"
                    )));
                }
            };
            Predicate::Like {
                pattern: LikePattern::parse(&pattern),
                case_insensitive: matches!(op, ValueOperator::ILike | ValueOperator::NotILike),
                negated: matches!(op, ValueOperator::NotLike | ValueOperator::NotILike),
            }
        }
        ValueOperator::Empty if ty == FieldType::Array => Predicate::ArrayEmpty,
        ValueOperator::NotEmpty if ty == FieldType::Array => Predicate::ArrayNotEmpty,
        ValueOperator::Empty => Predicate::Empty,
        ValueOperator::NotEmpty => Predicate::NotEmpty,
        ValueOperator::AnyOf
        | ValueOperator::NoneOf
        | ValueOperator::Match
        | ValueOperator::NotMatch
        | ValueOperator::ArrayEmpty
        | ValueOperator::ArrayNotEmpty
            if !matches!(ty, FieldType::Array | FieldType::Json) =>
        {
            return Err(Error::bad_request(format!(
                "{at}: array operators apply to array fields; {:?} is {ty}",
                field.name
            )));
        }
        ValueOperator::AnyOf => Predicate::ArrayAny(array_elements(operand, at)?),
        ValueOperator::NoneOf => Predicate::ArrayNone(array_elements(operand, at)?),
        ValueOperator::Match | ValueOperator::NotMatch => Predicate::ArraySet {
            values: array_elements(operand, at)?,
            negated: op == ValueOperator::NotMatch,
        },
        ValueOperator::ArrayEmpty => Predicate::ArrayEmpty,
        ValueOperator::ArrayNotEmpty => Predicate::ArrayNotEmpty,
        ValueOperator::IsTruly => {
            if truthy(operand) {
                Predicate::IsTrue
            } else {
                Predicate::IsFalsy
            }
        }
        ValueOperator::IsFalsy => {
            if truthy(operand) {
                Predicate::IsFalsy
            } else {
                Predicate::IsTrue
            }
        }
        // On a plain column, existence is non-NULL-ness; `false` asks for the opposite.
        ValueOperator::Exists | ValueOperator::NotExists => {
            let wants = (op == ValueOperator::Exists) != matches!(operand, Json::Bool(false));
            if wants {
                Predicate::IsNotNull
            } else {
                Predicate::IsNull
            }
        }
    })
}
