//! The filter language: a typed AST, parsed once from NocoBase's JSON filter and checked
//! against the collection.
//!
//! Parsing resolves every path to a real field and converts every operand to that field's
//! type, so a compiled query never contains a name or value the schema did not vouch for.
//! Any problem is a 400 whose message names the path inside the filter
//! (`filter.score.$gt: expected an integer, got "abc"`).

mod eval;
mod like;
mod operator;
pub mod path;

pub use eval::{compare_records, matches};
pub use like::{LikePart, LikePattern};
pub use path::{CollectionLookup, JoinPath, NoCollections};

use chrono::{DateTime, FixedOffset, NaiveTime, Utc};
use serde_json::{Map, Value as Json};

use crate::dates::{DateBound, date_condition, parse_date_operand};
use crate::error::{Error, Result};
use crate::schema::{Collection, Field, FieldType};
use crate::value::Value;
pub use operator::{DateOperator, Operator, OperatorSupport, ValueOperator};

/// A boolean expression over a collection's fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All must hold.
    And(Vec<Filter>),
    /// At least one must hold.
    Or(Vec<Filter>),
    /// One condition on one field.
    Condition(Condition),
}

/// A field that a condition or sort refers to, resolved against the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    /// The attribute name.
    pub name: String,
    /// The physical column.
    pub column: String,
    /// The field's type.
    pub field_type: FieldType,
    /// Whether the column may hold NULL. Keys and `NOT NULL` columns may not, which lets
    /// a sort on them skip NULL placement and use an index.
    pub nullable: bool,
    /// The associations crossed to reach the field's collection; `None` for a field of
    /// the queried collection itself.
    pub via: Option<std::sync::Arc<JoinPath>>,
}

impl FieldRef {
    /// A reference to `field` of the queried collection.
    pub fn new(field: &Field) -> Self {
        Self {
            name: field.name.clone(),
            column: field.column.clone(),
            field_type: field.field_type,
            nullable: field.allow_null && !field.primary_key,
            via: None,
        }
    }

    /// Every visible (not hidden) field of `collection`, in schema order: what a read
    /// returns when it names no fields.
    pub fn visible(collection: &Collection) -> Vec<FieldRef> {
        collection
            .fields()
            .iter()
            .filter(|f| !f.hidden)
            .map(FieldRef::new)
            .collect()
    }

    /// A reference to `field` of the collection at the end of `path`.
    pub fn through(field: &Field, path: std::sync::Arc<JoinPath>) -> Self {
        Self {
            via: Some(path),
            ..Self::new(field)
        }
    }
}

/// One condition: a field and what it must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The field tested.
    pub field: FieldRef,
    /// The test.
    pub predicate: Predicate,
}

/// Ordering comparisons (NULL rows never match any of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `<>`, without the NULL rows that [`Predicate::Ne`] includes.
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
}

/// Where a string operand must occur in the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMatch {
    /// Anywhere (`$includes`).
    Contains,
    /// At the start (`$startsWith`).
    StartsWith,
    /// At the end (`$endWith`).
    EndsWith,
}

/// What a field must satisfy. NULL handling follows the spec's Target column.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `c IS NULL`.
    IsNull,
    /// `c IS NOT NULL`.
    IsNotNull,
    /// `c = v` (NULL rows never match).
    Eq(Value),
    /// `c <> v OR c IS NULL`.
    Ne(Value),
    /// `c IN (…)`; an empty list matches nothing.
    In(Vec<Value>),
    /// `c NOT IN (…) OR c IS NULL`; an empty list matches every row.
    NotIn(Vec<Value>),
    /// `c > v` and friends (NULL rows never match).
    Compare(Comparison, Value),
    /// `c BETWEEN a AND b`, inclusive.
    Between(Value, Value),
    /// `c NOT BETWEEN a AND b` (NULL rows never match).
    NotBetween(Value, Value),
    /// Case-insensitive match of any (or, negated, none) of the operands; `%` and `_` in
    /// the operands are literal. Negated matches exclude NULL rows, as NocoBase does.
    Text {
        /// Where the operand must occur.
        mode: TextMatch,
        /// The operands (OR-ed; AND-ed of their negations when `negated`).
        operands: Vec<String>,
        /// `$notIncludes` and friends.
        negated: bool,
    },
    /// A client's SQL pattern (`$like` and friends), matched against the whole value.
    /// NULL rows never match, negated or not.
    Like {
        /// The pattern.
        pattern: LikePattern,
        /// `$iLike`/`$notILike`; `$like` is case-sensitive on every backend.
        case_insensitive: bool,
        /// `$notLike`/`$notILike`.
        negated: bool,
    },
    /// NULL, or `''` for text fields.
    Empty,
    /// Neither NULL nor `''` for text fields.
    NotEmpty,
    /// `c = true`.
    IsTrue,
    /// `c IS NULL OR c = false`.
    IsFalsy,
    /// The array holds at least one of the values (`$anyOf`).
    ArrayAny(Vec<Value>),
    /// The array holds none of the values, or is NULL (`$noneOf`).
    ArrayNone(Vec<Value>),
    /// The array holds exactly the same set of values, order and repeats aside
    /// (`$match`); `negated` for `$notMatch`, which also matches NULL.
    ArraySet {
        /// The set to compare with.
        values: Vec<Value>,
        /// `$notMatch`.
        negated: bool,
    },
    /// The array is NULL or has no element (`$arrayEmpty`, `$empty` on arrays).
    ArrayEmpty,
    /// The array has at least one element (`$arrayNotEmpty`, `$notEmpty` on arrays).
    ArrayNotEmpty,
}

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
    let object = match filter {
        Json::Null => return Ok(None),
        Json::Object(map) => map,
        other => {
            return Err(Error::bad_request(format!(
                "Invalid filter: expected a JSON object, got {other}"
            )));
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
    Ok(simplify(Filter::And(parser.object(
        object,
        "filter",
        &[],
    )?)))
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

/// Whether `filter` keeps at most one row: it is, or ANDs in, an equality on the
/// collection's single primary key. Such a read needs no order, and cannot run long
/// enough to be worth cancelling.
pub fn pins_one_row(filter: Option<&Filter>, collection: &Collection) -> bool {
    let Some(key) = collection.single_key() else {
        return false;
    };
    match filter {
        Some(Filter::Condition(c)) => {
            c.field.via.is_none()
                && c.field.column == key.column
                && matches!(c.predicate, Predicate::Eq(_))
        }
        Some(Filter::And(all)) => all.iter().any(|f| pins_one_row(Some(f), collection)),
        _ => false,
    }
}

/// `a AND b`, either side optional.
pub fn and(a: Option<Filter>, b: Option<Filter>) -> Option<Filter> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Filter::And(vec![a, b])),
        (a, b) => a.or(b),
    }
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
                path::WalkError::Empty => format!("{at}: empty path"),
            })
        })
    }
}

/// One bound of a date operator as a predicate on a field of type `ty`.
fn date_bound(ty: FieldType, bound: &DateBound) -> Predicate {
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

/// The elements an array operator compares with: JSON scalars, typed by their JSON type
/// (arrays hold scalars of any type, so the field type says nothing about them).
/// The error for an operator no table names; one that looks like a date operator says so.
fn unknown_operator(name: &str, at: &str) -> Error {
    if name.starts_with("$date") {
        return crate::dates::unknown_operator(name).context(at);
    }
    let supported: Vec<&str> = Operator::names().collect();
    Error::bad_request(format!(
        "{at}: unknown operator {name:?}; supported: {}",
        supported.join(" ")
    ))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, TableName};
    use serde_json::json;

    fn posts() -> Collection {
        let mut id = Field::new("id", FieldType::BigInt);
        id.primary_key = true;
        Collection::new(
            "posts",
            TableName::new("posts"),
            vec![
                id,
                Field::new("title", FieldType::String),
                Field::new("score", FieldType::Integer),
            ],
        )
        .expect("valid collection")
    }

    fn cond(name: &str, ty: FieldType, predicate: Predicate) -> Filter {
        Filter::Condition(Condition {
            field: FieldRef {
                name: name.into(),
                column: name.into(),
                field_type: ty,
                // In these tests only the key `id` is declared NOT NULL.
                nullable: name != "id",
                via: None,
            },
            predicate,
        })
    }

    #[test]
    fn nested_dotted_and_implicit_forms_are_the_same_condition() {
        let c = posts();
        let expected = Some(cond(
            "score",
            FieldType::Integer,
            Predicate::Compare(Comparison::Gt, Value::Int(3)),
        ));
        assert_eq!(
            parse_filter(&c, &json!({"score": {"$gt": 3}})),
            Ok(expected.clone())
        );
        assert_eq!(parse_filter(&c, &json!({"score.$gt": "3"})), Ok(expected));
        assert_eq!(
            parse_filter(&c, &json!({"title": "a"})),
            Ok(Some(cond(
                "title",
                FieldType::String,
                Predicate::Eq(Value::Text("a".into()))
            )))
        );
    }

    #[test]
    fn empty_groups_constrain_nothing() {
        let c = posts();
        for f in [
            json!({}),
            json!({"$and": []}),
            json!({"$or": [{}]}),
            json!({"$and": [{"$or": []}]}),
            json!({"$and": [{}], "$or": [{"$and": [], "$or": []}]}),
        ] {
            assert_eq!(parse_filter(&c, &f), Ok(None), "{f}");
        }
        assert!(matches!(
            parse_filter(&c, &json!({"$and": [], "$or": [{"title": "t"}]})),
            Ok(Some(_))
        ));
    }

    #[test]
    fn several_operators_on_one_field_are_anded() {
        let c = posts();
        let parsed = parse_filter(&c, &json!({"score": {"$gte": 1, "$lt": 5}}));
        assert!(matches!(parsed, Ok(Some(Filter::And(items))) if items.len() == 2));
    }

    #[test]
    fn errors_name_the_bad_part() {
        let c = posts();
        let msg = |f: Json| {
            parse_filter(&c, &f)
                .expect_err("must fail")
                .message()
                .to_owned()
        };
        assert_eq!(
            msg(json!({"nope": 1})),
            "filter.nope: unknown field \"nope\" in collection posts"
        );
        assert!(
            msg(json!({"score": {"$foo": 1}})).starts_with("filter.score.$foo: unknown operator")
        );
        assert_eq!(
            msg(json!({"score.$gt": "abc"})),
            "filter.score.$gt: expected an integer, got \"abc\""
        );
        assert!(msg(json!({"title": {}})).starts_with("filter.title: empty condition"));
        assert!(msg(json!({"$or": [1]})).starts_with("filter.$or.0: expected a filter object"));
        assert!(msg(json!([1])).starts_with("Invalid filter"));
        assert_eq!(
            msg(json!({"title": {"$or": [{"$eq": "a"}]}})),
            "filter.title.$or: $or groups whole conditions and cannot follow a field; \
             write {\"$or\": [{\"title.…\": …}, …]}"
        );
    }

    #[test]
    fn arrays_mean_membership() {
        let c = posts();
        assert_eq!(
            parse_filter(&c, &json!({"title.$eq": [123, "234"]})),
            Ok(Some(cond(
                "title",
                FieldType::String,
                Predicate::In(vec![Value::Text("123".into()), Value::Text("234".into())])
            )))
        );
        assert_eq!(
            parse_filter(&c, &json!({"title.$ne": ["b"]})),
            Ok(Some(cond(
                "title",
                FieldType::String,
                Predicate::NotIn(vec![Value::Text("b".into())])
            )))
        );
        assert_eq!(
            parse_filter(&c, &json!({"title.$in": null})),
            Ok(Some(cond(
                "title",
                FieldType::String,
                Predicate::In(vec![])
            )))
        );
    }

    #[test]
    fn filter_by_tk_builds_key_conditions() {
        let c = posts();
        assert_eq!(
            key_filter(&c, &json!("2")),
            Ok(Some(cond(
                "id",
                FieldType::BigInt,
                Predicate::Eq(Value::Int(2))
            )))
        );
        assert_eq!(
            key_filter(&c, &json!(["1", 3])),
            Ok(Some(cond(
                "id",
                FieldType::BigInt,
                Predicate::In(vec![Value::Int(1), Value::Int(3)])
            )))
        );
        assert!(key_filter(&c, &json!("x")).is_err());
    }

    #[test]
    fn an_operator_the_source_declined_is_refused_where_the_filter_uses_it() {
        let c = posts();
        let declined = [
            Operator::Value(ValueOperator::Includes),
            Operator::Value(ValueOperator::Eq),
            Operator::Value(ValueOperator::In),
        ];
        let context = FilterContext {
            operators: std::sync::Arc::new(OperatorSupport::of("toy", |op| {
                !declined.contains(&op)
            })),
            ..FilterContext::default()
        };
        let refusal = |f: Json| {
            parse_filter_in_context(&c, &f, &context)
                .expect_err("declined")
                .message()
                .to_owned()
        };
        assert_eq!(
            refusal(json!({"title": {"$includes": "a"}})),
            "filter.title.$includes: operator $includes is not supported by toy sources"
        );
        assert_eq!(
            refusal(json!({"$or": [{"score.$gt": 1}, {"title.$includes": "a"}]})),
            "filter.$or.1.title.$includes: operator $includes is not supported by toy sources"
        );
        // The implicit equality is an operator too.
        assert_eq!(
            refusal(json!({"title": "a"})),
            "filter.title: operator $eq is not supported by toy sources"
        );
        // Refused before the field is looked up: the operator is the first thing wrong.
        assert_eq!(
            refusal(json!({"nope.$includes": "a"})),
            "filter.nope.$includes: operator $includes is not supported by toy sources"
        );
        assert_eq!(
            parse_filter_in_context(&c, &json!({"score": {"$gt": 1}}), &context),
            Ok(Some(cond(
                "score",
                FieldType::Integer,
                Predicate::Compare(Comparison::Gt, Value::Int(1))
            )))
        );

        // filterByTk means $eq for a value and $in for a list.
        let key_refusal = |tk: Json| {
            key_filter_for(&c, &tk, &context.operators)
                .expect_err("declined")
                .message()
                .to_owned()
        };
        assert_eq!(
            key_refusal(json!(2)),
            "filterByTk: operator $eq is not supported by toy sources"
        );
        assert_eq!(
            key_refusal(json!([1, 2])),
            "filterByTk: operator $in is not supported by toy sources"
        );
        let only_eq = OperatorSupport::of("toy", |op| op != Operator::Value(ValueOperator::In));
        assert!(key_filter_for(&c, &json!(2), &only_eq).is_ok());
    }

    #[test]
    fn only_an_equality_on_the_key_pins_one_row() {
        let mut id = Field::new("id", FieldType::BigInt);
        id.primary_key = true;
        let posts = Collection::new(
            "posts",
            TableName::new("posts"),
            vec![id, Field::new("score", FieldType::Integer)],
        )
        .expect("valid collection");
        let parse = |filter: Json| {
            parse_filter_in_context(&posts, &filter, &FilterContext::default()).expect("parses")
        };
        for pinned in [
            json!({"id": 7}),
            json!({"id": {"$eq": 7}, "score": {"$gt": 1}}),
            json!({"$and": [{"score": 3}, {"id": 7}]}),
        ] {
            assert!(
                pins_one_row(parse(pinned.clone()).as_ref(), &posts),
                "{pinned}"
            );
        }
        for open in [
            json!({"id": {"$in": [7, 8]}}),
            json!({"id": {"$ne": 7}}),
            json!({"score": 7}),
            json!({"$or": [{"id": 7}, {"id": 8}]}),
        ] {
            assert!(
                !pins_one_row(parse(open.clone()).as_ref(), &posts),
                "{open}"
            );
        }
        assert!(!pins_one_row(None, &posts));
    }
}
