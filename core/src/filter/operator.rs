//! The filter operators: one table names each, and the parser, the list that an unknown
//! operator's error gives, and every `match` over operators come from it, so they cannot
//! disagree (a `match` that misses an operator does not compile). [`OperatorSupport`]
//! says which of them one data source runs.

use crate::error::{Error, Result};

/// Declares an operator enum from `Variant = "$wire"` pairs, with its table.
macro_rules! operators {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$doc:meta])* $variant:ident = $wire:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$doc])* $variant,)*
        }

        impl $name {
            /// Every one, in the documented order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name filters use (`$eq`).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }

            /// The operator called `name`, if there is one.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($wire => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

operators! {
    /// An operator that compares a field with a value, a list, a pattern or nothing.
    pub enum ValueOperator {
        /// Equal; `null` is `IS NULL`, an array is `IN`.
        Eq = "$eq",
        /// Not equal; `null` is `IS NOT NULL`, an array is `NOT IN`.
        Ne = "$ne",
        /// One of a list.
        In = "$in",
        /// None of a list.
        NotIn = "$notIn",
        /// Greater than.
        Gt = "$gt",
        /// Greater than or equal.
        Gte = "$gte",
        /// Less than.
        Lt = "$lt",
        /// Less than or equal.
        Lte = "$lte",
        /// Within `[low, high]`, both included.
        Between = "$between",
        /// Outside `[low, high]`.
        NotBetween = "$notBetween",
        /// The text contains one of the operands.
        Includes = "$includes",
        /// The text contains none of the operands.
        NotIncludes = "$notIncludes",
        /// The text starts with one of the operands.
        StartsWith = "$startsWith",
        /// The text starts with none of the operands.
        NotStartsWith = "$notStartsWith",
        /// The text ends with one of the operands.
        EndWith = "$endWith",
        /// The text ends with none of the operands.
        NotEndWith = "$notEndWith",
        /// SQL `LIKE`, case-sensitive.
        Like = "$like",
        /// Not `LIKE`.
        NotLike = "$notLike",
        /// `LIKE`, case-insensitive.
        ILike = "$iLike",
        /// Not `LIKE`, case-insensitive.
        NotILike = "$notILike",
        /// `NULL` or empty.
        Empty = "$empty",
        /// Neither `NULL` nor empty.
        NotEmpty = "$notEmpty",
        /// True (or, given `false`, not true).
        IsTruly = "$isTruly",
        /// False or `NULL` (or, given `false`, true).
        IsFalsy = "$isFalsy",
        /// Not `NULL` (an association: has a row).
        Exists = "$exists",
        /// `NULL` (an association: has no row).
        NotExists = "$notExists",
        /// An array holding any of the operands.
        AnyOf = "$anyOf",
        /// An array holding none of the operands.
        NoneOf = "$noneOf",
        /// An array holding exactly the operands, in any order.
        Match = "$match",
        /// An array not holding exactly the operands.
        NotMatch = "$notMatch",
        /// An empty array.
        ArrayEmpty = "$arrayEmpty",
        /// A non-empty array.
        ArrayNotEmpty = "$arrayNotEmpty",
    }
}

operators! {
    /// An operator that compares a date field with an instant or a range (spec §5.2).
    pub enum DateOperator {
        /// Within the range, or at the instant.
        DateOn = "$dateOn",
        /// Outside the range, or not at the instant.
        DateNotOn = "$dateNotOn",
        /// Before the range or instant.
        DateBefore = "$dateBefore",
        /// At or after its start.
        DateNotBefore = "$dateNotBefore",
        /// After the range or instant.
        DateAfter = "$dateAfter",
        /// At or before its end.
        DateNotAfter = "$dateNotAfter",
        /// Within the range (a single instant is refused).
        DateBetween = "$dateBetween",
    }
}

/// An operator as a filter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// A value operator.
    Value(ValueOperator),
    /// A date operator.
    Date(DateOperator),
}

impl Operator {
    /// The operator called `name`, if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        ValueOperator::parse(name)
            .map(Self::Value)
            .or_else(|| DateOperator::parse(name).map(Self::Date))
    }

    /// The name filters use (`$eq`, `$dateOn`).
    pub fn name(self) -> &'static str {
        match self {
            Operator::Value(op) => op.name(),
            Operator::Date(op) => op.name(),
        }
    }

    /// Every operator, in the documented order.
    pub fn all() -> impl Iterator<Item = Operator> {
        let values = ValueOperator::ALL.iter().copied().map(Self::Value);
        values.chain(DateOperator::ALL.iter().copied().map(Self::Date))
    }

    /// Every operator's name, as an unknown operator's error lists them.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::all().map(Self::name)
    }
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The operators one data source runs, as its connector answered
/// [`Connector::supports_operator`](crate::connector::Connector::supports_operator) when the
/// source loaded, and the source's type, which a refusal names.
///
/// The parser consults it for every operator a client's filter uses, so a connector never
/// sees a filter it said it cannot run, and every refusal reads the same. The default
/// refuses nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorSupport {
    /// The source type (`sqlite`, `toy`), for the refusal's message.
    kind: String,
    /// The operators refused, in table order; empty for almost every source.
    refused: Vec<Operator>,
}

impl OperatorSupport {
    /// Asks `supports` about every operator once, for sources of type `kind`.
    pub fn of(kind: &str, supports: impl Fn(Operator) -> bool) -> Self {
        Self {
            kind: kind.to_owned(),
            refused: Operator::all().filter(|op| !supports(*op)).collect(),
        }
    }

    /// Whether filters may use `op`.
    pub fn supports(&self, op: Operator) -> bool {
        !self.refused.contains(&op)
    }

    /// `Ok` when filters may use `op`; else the 400 that names it and the source type,
    /// with `at` saying where the request used it (`filter.tags.$anyOf`).
    pub fn check(&self, op: Operator, at: &str) -> Result<()> {
        if self.supports(op) {
            return Ok(());
        }
        Err(Error::bad_request(format!(
            "{at}: operator {op} is not supported by {} sources",
            self.kind
        ))
        .with_message_id(
            "filter-operator-unsupported",
            vec![
                ("path", at.to_owned()),
                ("operator", op.to_string()),
                ("kind", self.kind.clone()),
            ],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_reads_back_from_its_name() {
        let mut seen = std::collections::HashSet::new();
        for name in Operator::names() {
            assert!(seen.insert(name), "{name} is named twice");
            let op = Operator::parse(name).expect("a listed name parses");
            assert_eq!(op.name(), name);
        }
        assert_eq!(seen.len(), 39);
        assert_eq!(Operator::parse("$regex"), None);
    }

    #[test]
    fn a_source_refuses_exactly_what_its_connector_declined() {
        let every = OperatorSupport::default();
        assert!(Operator::all().all(|op| every.supports(op)));

        let includes = Operator::Value(ValueOperator::Includes);
        let support = OperatorSupport::of("toy", |op| op != includes);
        assert!(!support.supports(includes));
        assert!(support.supports(Operator::Value(ValueOperator::Eq)));
        assert!(support.supports(Operator::Date(DateOperator::DateOn)));
        assert_eq!(
            support.check(Operator::Value(ValueOperator::Eq), "filter.title"),
            Ok(())
        );
        let refused = support
            .check(includes, "filter.title.$includes")
            .expect_err("declined");
        assert_eq!(refused.kind(), crate::error::ErrorKind::BadRequest);
        assert_eq!(
            refused.message(),
            "filter.title.$includes: operator $includes is not supported by toy sources"
        );
    }
}
