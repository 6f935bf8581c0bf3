//! The filter language: a typed AST, parsed once from NocoBase's JSON filter and checked
//! against the collection.
//!
//! Parsing resolves every path to a real field and converts every operand to that field's
//! type, so a compiled query never contains a name or value the schema did not vouch for.
//! Any problem is a 400 whose message names the path inside the filter
//! (`filter.score.$gt: expected an integer, got "abc"`).

mod ast;
mod date_bounds;
mod eval;
mod like;
mod operator;
mod parse;
pub mod path;
pub mod remote;
#[cfg(test)]
mod tests;

pub use ast::{Comparison, Condition, FieldRef, Filter, Predicate, TextMatch, and, pins_one_row};
pub use eval::{compare_records, matches};
pub use like::{LikePart, LikePattern};
pub use operator::{DateOperator, Operator, OperatorSupport, ValueOperator};
pub use parse::{
    FilterContext, MAX_FILTER_VALUES, key_filter, key_filter_for, parse_filter,
    parse_filter_across, parse_filter_in_context,
};
pub use path::{CollectionLookup, JoinPath, NoCollections};
