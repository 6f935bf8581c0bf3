//! MongoDB driver errors as client-facing core errors.

use std::collections::HashMap;

use manifold_core::error::{Error, ErrorKind};
use mongodb::bson::{Bson, Document};
use mongodb::error::{
    Error as MongoError, ErrorKind as MongoKind, TRANSIENT_TRANSACTION_ERROR, WriteFailure,
};

/// The message for every failure to reach the server.
pub(crate) const UNREACHABLE: &str = "the data source cannot be reached";

/// What an error message may name about a collection: attribute names by stored field
/// (a declared key is stored as `_id`), and the stored fields of each unique index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    /// Stored field name to attribute name.
    pub attributes: HashMap<String, String>,
    /// Unique index name to its stored fields.
    pub unique_indexes: HashMap<String, Vec<String>>,
}

impl Names {
    fn attribute(&self, column: &str) -> String {
        self.attributes
            .get(column)
            .cloned()
            .unwrap_or_else(|| column.to_owned())
    }
}

/// Server codes that mean the server is gone, stepping down or not the primary: the
/// source cannot serve now (503).
const UNAVAILABLE_CODES: &[i32] = &[
    6, 7, 89, 91, 189, 10107, 11600, 11602, 13435, 13436, 262, 9001,
];

/// Server codes for a value the server refuses to store or compare (400).
const BAD_VALUE_CODES: &[i32] = &[2, 14, 52, 55, 56, 57, 10334, 17280];

/// Maps a driver error: a duplicate key or failed validation is the client's (400), an
/// expired `maxTimeMS` is a timeout, an unreachable server or rejected login cannot serve
/// (503), a write conflict is a 409, anything else is ours (500, details in the log only).
///
/// Messages never carry connection options, and a duplicate key names its fields, never
/// the value (which may be private to another user).
pub(crate) fn map_mongo(e: &MongoError, names: &Names) -> Error {
    // A transient transaction error (a write conflict, an election) is worth a retry by the
    // client, unless its code says more precisely what happened.
    let transient = e.contains_label(TRANSIENT_TRANSACTION_ERROR);
    match &*e.kind {
        MongoKind::Command(c) => by_code(c.code, &c.message, None, names, transient, e),
        MongoKind::Write(WriteFailure::WriteError(w)) => {
            by_code(w.code, &w.message, w.details.as_ref(), names, transient, e)
        }
        MongoKind::InsertMany(failure) => match failure.write_errors.as_deref() {
            Some([first, ..]) => by_code(
                first.code,
                &first.message,
                first.details.as_ref(),
                names,
                transient,
                e,
            ),
            _ => internal(e),
        },
        MongoKind::Write(WriteFailure::WriteConcernError(_)) => {
            tracing::warn!(error = %e, "mongodb write concern failed");
            Error::unavailable(format!(
                "{UNREACHABLE}: the write was not acknowledged by enough servers"
            ))
        }
        MongoKind::Authentication { .. } => Error::unavailable(format!(
            "{UNREACHABLE}: the server rejected the credentials"
        )),
        MongoKind::ServerSelection { .. }
        | MongoKind::Io(_)
        | MongoKind::ConnectionPoolCleared { .. }
        | MongoKind::DnsResolve { .. }
        | MongoKind::Shutdown => unavailable(e),
        _ if transient => conflict(),
        _ => internal(e),
    }
}

fn conflict() -> Error {
    Error::conflict("the write conflicted with a concurrent one; retry")
}

fn unavailable(e: &MongoError) -> Error {
    tracing::warn!(error = %e, "mongodb unavailable");
    Error::unavailable(UNREACHABLE)
}

fn internal(e: &MongoError) -> Error {
    tracing::error!(error = %e, "mongodb failure");
    Error::internal("unexpected database failure")
}

fn by_code(
    code: i32,
    message: &str,
    details: Option<&Document>,
    names: &Names,
    transient: bool,
    e: &MongoError,
) -> Error {
    match code {
        11000 | 11001 => Error::bad_request(format!(
            "{} already exists",
            duplicate_fields(message, names)
        ))
        .with_code(manifold_core::error::UNIQUE_VIOLATION),
        121 => match details.and_then(invalid_field) {
            Some(column) => {
                Error::bad_request(format!("{} cannot be null", names.attribute(&column)))
            }
            None => {
                Error::bad_request("the record does not satisfy the collection's validation rules")
            }
        },
        50 => Error::new(
            ErrorKind::Timeout,
            "the query took longer than the statement timeout",
        ),
        48 => Error::conflict("collection already exists"),
        112 | 251 => conflict(),
        18 => Error::unavailable(format!(
            "{UNREACHABLE}: the server rejected the credentials"
        )),
        13 => {
            tracing::warn!(error = %message, "mongodb refused the operation");
            Error::unavailable(format!(
                "{UNREACHABLE}: the data source's user is not allowed to do this"
            ))
        }
        c if UNAVAILABLE_CODES.contains(&c) => unavailable(e),
        c if BAD_VALUE_CODES.contains(&c) => {
            Error::bad_request(format!("invalid value: {message}"))
        }
        _ if transient => conflict(),
        _ => internal(e),
    }
}

/// The attribute names of a duplicate key error's index, from
/// `E11000 … index: <name> dup key: { <field>: … }`.
fn duplicate_fields(message: &str, names: &Names) -> String {
    let index = message
        .split_once("index: ")
        .and_then(|(_, rest)| rest.split_once(" dup key"))
        .map(|(name, _)| name.trim());
    let columns = index
        .and_then(|name| names.unique_indexes.get(name).cloned())
        .or_else(|| (index == Some("_id_")).then(|| vec!["_id".to_owned()]))
        .or_else(|| {
            // An index Manifold did not see: the first field of the `dup key` object. Only
            // its name is read; the value after the colon is never shown.
            let rest = message.split_once("dup key: {")?.1.trim_start();
            let field = rest.split_once(':')?.0.trim().trim_matches('"');
            (!field.is_empty()).then(|| vec![field.to_owned()])
        });
    match columns {
        Some(cols) if !cols.is_empty() => cols
            .iter()
            .map(|c| names.attribute(c))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "the value".to_owned(),
    }
}

/// The first field a `$jsonSchema` failure names in its `errInfo`: a required property
/// that is missing, or a property whose value broke a rule.
fn invalid_field(details: &Document) -> Option<String> {
    let rules = details
        .get_document("details")
        .ok()?
        .get_array("schemaRulesNotSatisfied")
        .ok()?;
    rules.iter().find_map(|rule| {
        let rule = rule.as_document()?;
        match rule.get_str("operatorName").ok()? {
            "required" => first_string(rule.get_array("missingProperties").ok()?),
            "properties" => rule
                .get_array("propertiesNotSatisfied")
                .ok()?
                .iter()
                .find_map(|p| {
                    p.as_document()?
                        .get_str("propertyName")
                        .ok()
                        .map(str::to_owned)
                }),
            _ => None,
        }
    })
}

fn first_string(items: &[Bson]) -> Option<String> {
    items.iter().find_map(|b| b.as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn duplicate_keys_name_fields_not_values() {
        let mut names = Names::default();
        names.attributes.insert("_id".into(), "code".into());
        names
            .unique_indexes
            .insert("a_1_b_1".into(), vec!["a".into(), "b".into()]);
        let msg = |m: &str| duplicate_fields(m, &names);
        assert_eq!(
            msg(
                r#"E11000 duplicate key error collection: t.u index: email_1 dup key: { email: "secret@x" }"#
            ),
            "email"
        );
        assert_eq!(
            msg("E11000 duplicate key error collection: t.u index: _id_ dup key: { _id: 1 }"),
            "code"
        );
        assert_eq!(
            msg(
                "E11000 duplicate key error collection: t.u index: a_1_b_1 dup key: { a: 1, b: 2 }"
            ),
            "a, b"
        );
        assert_eq!(msg("E11000 duplicate key"), "the value");
    }

    #[test]
    fn validation_failures_name_the_field() {
        let missing = doc! {"details": {"operatorName": "$jsonSchema", "schemaRulesNotSatisfied": [
            {"operatorName": "required", "missingProperties": ["title"]}
        ]}};
        assert_eq!(invalid_field(&missing).as_deref(), Some("title"));
        let null = doc! {"details": {"schemaRulesNotSatisfied": [
            {"operatorName": "properties", "propertiesNotSatisfied": [{"propertyName": "t"}]}
        ]}};
        assert_eq!(invalid_field(&null).as_deref(), Some("t"));
        assert_eq!(invalid_field(&doc! {}), None);
    }
}
