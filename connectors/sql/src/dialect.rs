//! What differs between SQL databases, and nothing else: the [`Dialect`] trait each SQL
//! connector implements for its database.
//!
//! The compiler ([`crate::compile`]) writes one statement shape for every database and asks
//! the dialect at each point where databases disagree. Three methods are required (the
//! database's name, its placeholders and its lock); everything else has a default that is
//! standard SQL, or SQLite's JSON functions where the standard has none, so a new database
//! overrides only where it differs, in its own crate, and never edits the compiler.

use std::fmt::Debug;
use std::time::Duration;

use manifold_core::filter::{FieldRef, LikePattern};
use manifold_core::value::Value;

use crate::SqlBuilder;
use crate::compile;
use crate::lock::{KeyLock, SessionLock};

/// Where a statement names the columns it returns after an `INSERT` or `UPDATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returning {
    /// `… RETURNING "a", "b"` at the end (PostgreSQL, SQLite, MariaDB).
    Clause,
    /// `… OUTPUT INSERTED.[a], INSERTED.[b]` before `VALUES`/`WHERE` (SQL Server).
    OutputInserted,
}

/// One SQL database's spelling of what the compiler writes.
///
/// Implementations are unit structs in their connector's crate (`PostgresDialect`,
/// `SqliteDialect`, …), passed around as `&'static dyn Dialect`.
pub trait Dialect: Debug + Send + Sync + 'static {
    /// The OpenTelemetry `db.system.name` of the database (`postgresql`, `sqlite`, …).
    fn system_name(&self) -> &'static str;

    /// Appends the placeholder of the `n`-th (1-based) parameter (`$1`, `?`, `@P1`).
    fn placeholder_into(&self, n: usize, out: &mut String);

    /// The statements that hold an exclusive lock on `key` around one transaction,
    /// waiting at most `wait` where the database takes a wait (zero: no limit of its own).
    /// What `firstOrCreate` and `updateOrCreate` run under, so they have no default.
    fn key_lock(&self, key: &str, wait: Duration) -> KeyLock;

    /// The same lock held by a session across transactions (the main database's
    /// migrations), or `None` where the database needs none.
    fn session_lock(&self, _key: &str, _wait: Duration) -> Option<SessionLock> {
        None
    }

    /// The characters that open and close a quoted identifier.
    fn identifier_quotes(&self) -> (char, char) {
        ('"', '"')
    }

    /// Appends `ident` quoted, doubling any closing quote character inside it.
    fn quote_into(&self, ident: &str, out: &mut String) {
        let (open, close) = self.identifier_quotes();
        out.push(open);
        for c in ident.chars() {
            if c == close {
                out.push(close);
            }
            out.push(c);
        }
        out.push(close);
    }

    /// The most parameters one statement may carry (very long `IN` lists are chunked
    /// below this anyway). The default is SQLite's limit.
    fn max_params(&self) -> usize {
        32_000
    }

    /// The aggregate that counts rows.
    fn count_function(&self) -> &'static str {
        "COUNT"
    }

    /// What a `SELECT` ends with to lock the rows it reads until the transaction ends
    /// (empty where the database locks otherwise).
    fn row_lock(&self) -> &'static str {
        " FOR UPDATE"
    }

    /// What follows the column list of an `INSERT` that sets no column.
    fn insert_defaults(&self) -> &'static str {
        " DEFAULT VALUES"
    }

    /// Where written rows are returned.
    fn returning(&self) -> Returning {
        Returning::Clause
    }

    /// Whether an `INSERT` can return the rows it wrote. Where it cannot, the repository
    /// reads a created row back by its key in the insert's transaction.
    fn insert_returns_rows(&self) -> bool {
        true
    }

    /// Whether an `UPDATE` can return the rows it changed. Where it cannot, the repository
    /// locks the matched keys, updates, and reads those rows back in one transaction.
    fn update_returns_rows(&self) -> bool {
        true
    }

    /// The type a non-text column is cast to before text is matched against it.
    fn text_type(&self) -> &'static str {
        "TEXT"
    }

    /// The `LIKE` operator that matches case-insensitively. The default, plain `LIKE`,
    /// suits databases whose default collation ignores case.
    fn case_insensitive_like(&self) -> &'static str {
        "LIKE"
    }

    /// The `ESCAPE` clause for the backslash-escaped patterns the compiler writes.
    fn like_escape_clause(&self) -> &'static str {
        " ESCAPE '\\'"
    }

    /// Whether `c` means something in a `LIKE` pattern and must be escaped to match
    /// itself.
    fn like_special(&self, c: char) -> bool {
        matches!(c, '%' | '_' | '\\')
    }

    /// `f`'s column as compared for equality and order.
    fn compared(&self, b: &mut SqlBuilder, f: &FieldRef) {
        b.field(f);
    }

    /// A value `v` compared with `f`.
    fn operand(&self, b: &mut SqlBuilder, f: &FieldRef, v: &Value) {
        let _ = f;
        b.bind(v.clone());
    }

    /// `f IN (…)` or, `negated`, `f NOT IN (…)`, with `values` non-empty.
    fn in_list(&self, b: &mut SqlBuilder, f: &FieldRef, values: &[Value], negated: bool) {
        compile::in_list_chunked(b, f, values, negated);
    }

    /// `f` against a client's `$like` `pattern`, matching case exactly unless
    /// `case_insensitive`. The default is `LIKE`, or
    /// [`case_insensitive_like`](Self::case_insensitive_like), on `f` as text.
    fn like(
        &self,
        b: &mut SqlBuilder,
        f: &FieldRef,
        pattern: &LikePattern,
        case_insensitive: bool,
        negated: bool,
    ) {
        compile::text_column(b, f);
        let op = if case_insensitive {
            self.case_insensitive_like()
        } else {
            "LIKE"
        };
        compile::like_operand(b, pattern, op, false, negated);
    }

    /// A sort key on a column that may be NULL, NULLs last in both directions.
    fn order_nulls_last(&self, b: &mut SqlBuilder, f: &FieldRef, descending: bool) {
        b.field(f)
            .push(if descending { " DESC" } else { " ASC" })
            .push(" NULLS LAST");
    }

    /// What `LIMIT` takes for "no limit", for an `OFFSET` without one.
    fn unbounded_limit(&self) -> &'static str {
        "18446744073709551615"
    }

    /// The page: at most `limit` rows after skipping `offset` (at least one is given);
    /// `ordered` says whether the statement has an `ORDER BY`.
    fn page(&self, b: &mut SqlBuilder, limit: Option<u64>, offset: Option<u64>, ordered: bool) {
        let _ = ordered;
        b.push(" LIMIT ");
        match limit {
            Some(n) => b.push_u64(n),
            None => b.push(self.unbounded_limit()),
        };
        if let Some(offset) = offset {
            b.push(" OFFSET ").push_u64(offset);
        }
    }

    /// The table-valued function that lists a JSON array's elements as rows of `value`.
    fn json_elements_function(&self) -> &'static str {
        "json_each"
    }

    /// The length of the JSON array in `f`, 0 for NULL.
    fn array_length(&self, b: &mut SqlBuilder, f: &FieldRef) {
        b.push("COALESCE(json_array_length(").field(f).push("), 0)");
    }

    /// The JSON array in `f` holds at least one of `values` (non-empty).
    fn array_any(&self, b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
        compile::array_any_by_elements(b, f, values);
    }

    /// The JSON array in `f` holds exactly the set `values`.
    fn array_set(&self, b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
        compile::array_set_by_elements(b, f, values);
    }
}
