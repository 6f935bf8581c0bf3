//! Accumulates SQL text and its bound parameters together, so a value can only enter a
//! statement as a parameter.

use manifold_core::filter::{FieldRef, JoinPath};
use manifold_core::schema::TableName;
use manifold_core::value::Value;

use crate::dialect::Dialect;

/// The most terms [`SqlBuilder::join_balanced`] writes as one flat chain.
const FLAT_TERMS: usize = 64;

/// A statement ready to run: text with placeholders, and the values to bind, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    /// The SQL text; it contains no request value.
    pub text: String,
    /// The parameters, in placeholder order.
    pub params: Vec<Value>,
}

impl Sql {
    /// The statement's `db.operation.name`: its first keyword (`SELECT`, `UPDATE …
    /// RETURNING`, …), which for a compiled statement is always one of a handful.
    pub fn operation(&self) -> &'static str {
        let head = self.text.trim_start();
        ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"]
            .into_iter()
            .find(|kw| {
                head.get(..kw.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(kw))
            })
            .unwrap_or("QUERY")
    }
}

/// Builds one [`Sql`] statement.
#[derive(Debug)]
pub struct SqlBuilder {
    dialect: &'static dyn Dialect,
    text: String,
    params: Vec<Value>,
    qualifiers: Option<Qualifiers>,
}

/// How column names are qualified while a statement joins other tables: the queried
/// table by its own name, each association path by the alias of its joined table.
#[derive(Debug, Clone, Default)]
pub struct Qualifiers {
    /// The queried table's name, as it is exposed in the statement.
    pub root: String,
    /// The alias of each joined association path, by path key (`posts.comments`).
    pub aliases: Vec<(String, String)>,
}

impl Qualifiers {
    /// The alias joined for the path called `key`.
    pub fn alias(&self, key: &str) -> Option<&str> {
        self.aliases
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, a)| a.as_str())
    }
}

impl SqlBuilder {
    /// An empty statement in `dialect`.
    pub fn new(dialect: &'static dyn Dialect) -> Self {
        Self {
            dialect,
            text: String::with_capacity(128),
            params: Vec::new(),
            qualifiers: None,
        }
    }

    /// Column names are qualified by `qualifiers` from now on (or no longer, for `None`);
    /// returns the previous setting so a subquery can restore it.
    pub fn set_qualifiers(&mut self, qualifiers: Option<Qualifiers>) -> Option<Qualifiers> {
        std::mem::replace(&mut self.qualifiers, qualifiers)
    }

    /// The dialect being written.
    pub fn dialect(&self) -> &'static dyn Dialect {
        self.dialect
    }

    /// Appends SQL keywords or punctuation written by this crate.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    /// Appends an integer written by this crate (limits, offsets).
    pub fn push_u64(&mut self, n: u64) -> &mut Self {
        use std::fmt::Write as _;
        let _ = write!(self.text, "{n}");
        self
    }

    /// Appends a quoted identifier (from the introspected schema).
    pub fn ident(&mut self, ident: &str) -> &mut Self {
        self.dialect.quote_into(ident, &mut self.text);
        self
    }

    /// Appends a quoted column, qualified by the alias joined for the association path
    /// called `path` (or by the queried table, for `None`) when the statement joins tables.
    pub fn column(&mut self, path: Option<&str>, column: &str) -> &mut Self {
        if let Some(q) = &self.qualifiers {
            let qualifier = match path {
                None => Some(q.root.as_str()),
                Some(key) => q.alias(key),
            };
            if let Some(qualifier) = qualifier {
                self.dialect.quote_into(qualifier, &mut self.text);
                self.text.push('.');
            }
        }
        self.ident(column)
    }

    /// Appends the column of a filter or sort field, qualified as [`column`](Self::column)
    /// qualifies it.
    pub fn field(&mut self, f: &FieldRef) -> &mut Self {
        self.column(f.via.as_deref().map(JoinPath::key), &f.column)
    }

    /// Appends a quoted, schema-qualified table name.
    pub fn table(&mut self, table: &TableName) -> &mut Self {
        if let Some(schema) = &table.schema {
            self.ident(schema);
            self.text.push('.');
        }
        self.ident(&table.name)
    }

    /// Appends a placeholder and records `value` to bind there.
    pub fn bind(&mut self, value: Value) -> &mut Self {
        self.params.push(value);
        self.dialect
            .placeholder_into(self.params.len(), &mut self.text);
        self
    }

    /// Appends `item(self, x)` for each of `items`, separated by `sep`.
    pub fn join<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        sep: &str,
        mut item: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        for (i, x) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(sep);
            }
            item(self, x);
        }
        self
    }

    /// Appends `item(self, x)` for each of `items` joined by a boolean operator (`sep` is
    /// `" AND "` or `" OR "`). A long list is nested as a balanced tree of parenthesised
    /// halves: `a OR b OR …` with thousands of terms parses as a chain thousands deep, and
    /// SQLite refuses an expression tree deeper than 1,000 ("Expression tree is too large").
    pub fn join_balanced<T>(
        &mut self,
        items: &[T],
        sep: &str,
        mut item: impl FnMut(&mut Self, &T),
    ) -> &mut Self {
        self.balanced(items, sep, &mut item);
        self
    }

    fn balanced<T>(&mut self, items: &[T], sep: &str, item: &mut dyn FnMut(&mut Self, &T)) {
        if items.len() <= FLAT_TERMS {
            self.join(items, sep, |b, x| item(b, x));
            return;
        }
        let (left, right) = items.split_at(items.len() / 2);
        self.text.push('(');
        self.balanced(left, sep, item);
        self.text.push(')');
        self.text.push_str(sep);
        self.text.push('(');
        self.balanced(right, sep, item);
        self.text.push(')');
    }

    /// The finished statement.
    pub fn finish(self) -> Sql {
        Sql {
            text: self.text,
            params: self.params,
        }
    }
}
