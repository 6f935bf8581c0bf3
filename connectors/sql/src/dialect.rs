//! What differs between SQL databases, and nothing else.

/// A SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL: `"ident"`, `$1`, `ILIKE`, `NULLS LAST`, `RETURNING`.
    Postgres,
    /// MySQL and MariaDB: `` `ident` ``, `?`, case-insensitive collations, no `NULLS LAST`.
    MySql,
    /// SQLite: `"ident"`, `?`, `NULLS LAST`, `RETURNING`.
    Sqlite,
    /// SQL Server: `[ident]`, `@P1`, `OFFSET … FETCH`, `OUTPUT INSERTED.*`.
    Mssql,
}

impl Dialect {
    /// Appends `ident` quoted, doubling any quote character inside it.
    pub fn quote_into(self, ident: &str, out: &mut String) {
        let (open, close) = match self {
            Dialect::Postgres | Dialect::Sqlite => ('"', '"'),
            Dialect::MySql => ('`', '`'),
            Dialect::Mssql => ('[', ']'),
        };
        out.push(open);
        for c in ident.chars() {
            if c == close {
                out.push(close);
            }
            out.push(c);
        }
        out.push(close);
    }

    /// Appends the placeholder of the `n`-th (1-based) parameter.
    pub fn placeholder_into(self, n: usize, out: &mut String) {
        use std::fmt::Write as _;
        let _ = match self {
            Dialect::Postgres => write!(out, "${n}"),
            Dialect::MySql | Dialect::Sqlite => {
                out.push('?');
                Ok(())
            }
            Dialect::Mssql => write!(out, "@P{n}"),
        };
    }

    /// The most parameters one statement may carry (SQL Server allows 2,100; the others
    /// far more, but very long IN lists are chunked anyway).
    pub fn max_params(self) -> usize {
        match self {
            Dialect::Mssql => 2000,
            Dialect::Sqlite => 32_000,
            Dialect::Postgres | Dialect::MySql => 60_000,
        }
    }

    /// The `LIKE` operator that matches case-insensitively here.
    pub(crate) fn ilike(self) -> &'static str {
        match self {
            Dialect::Postgres => "ILIKE",
            // SQLite's LIKE is case-insensitive for ASCII; MySQL's and SQL Server's follow
            // the column collation, case-insensitive by default.
            Dialect::Sqlite | Dialect::MySql | Dialect::Mssql => "LIKE",
        }
    }

    /// The `ESCAPE` clause for our backslash-escaped patterns (MySQL's default escape is
    /// already the backslash, and spelling it would need a doubled backslash there).
    pub(crate) fn like_escape(self) -> &'static str {
        match self {
            Dialect::MySql => "",
            _ => " ESCAPE '\\'",
        }
    }

    /// The aggregate that counts rows: SQL Server's `COUNT` overflows past 2^31 - 1 rows,
    /// so it counts with `COUNT_BIG`.
    pub(crate) fn count_function(self) -> &'static str {
        match self {
            Dialect::Mssql => "COUNT_BIG",
            Dialect::Postgres | Dialect::MySql | Dialect::Sqlite => "COUNT",
        }
    }

    /// What a `SELECT` ends with to lock the rows it reads until the transaction ends.
    /// SQLite has no row locks (a writing transaction locks the database), and SQL Server
    /// locks through table hints, which no statement here needs.
    pub(crate) fn row_lock(self) -> &'static str {
        match self {
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
            Dialect::Sqlite | Dialect::Mssql => "",
        }
    }

    /// The type to cast a non-text column to before matching text against it.
    pub(crate) fn text_type(self) -> &'static str {
        match self {
            Dialect::Postgres | Dialect::Sqlite => "TEXT",
            Dialect::MySql => "CHAR",
            Dialect::Mssql => "NVARCHAR(MAX)",
        }
    }
}
