//! The SQLite repository: compiled SQL from `manifold-sql`, run on a sqlx pool.

use std::cmp::Ordering;
use std::sync::Arc;

use manifold_core::error::Result;
use manifold_core::filter::{FieldRef, Filter};
use manifold_core::query::FindOptions;
use manifold_core::repository::{Record, Repository, WriteValues};
use manifold_core::schema::Collection;
use manifold_sql::{Dialect, compile};
use serde_json::Value as Json;
use sqlx::{Row, SqlitePool};

use crate::codec::{prepare, record};
use crate::error::map_sqlx;

const DIALECT: Dialect = Dialect::Sqlite;

/// Reads and writes one SQLite table.
pub struct SqliteRepository {
    pool: SqlitePool,
    collection: Arc<Collection>,
    visible: Vec<FieldRef>,
}

impl SqliteRepository {
    /// A repository for `collection` on `pool`.
    pub fn new(pool: SqlitePool, collection: Arc<Collection>) -> Self {
        let visible = collection
            .fields()
            .iter()
            .filter(|f| !f.hidden)
            .map(FieldRef::new)
            .collect();
        Self {
            pool,
            collection,
            visible,
        }
    }

    /// Orders records by primary key, as the API promises for `update` results.
    fn sort_by_key(&self, rows: &mut [Record]) {
        let keys: Vec<&str> = self
            .collection
            .primary_key()
            .map(|f| f.name.as_str())
            .collect();
        rows.sort_by(|a, b| {
            keys.iter()
                .map(|k| compare_json(a.get(*k), b.get(*k)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
    }
}

fn compare_json(a: Option<&Json>, b: Option<&Json>) -> Ordering {
    match (a, b) {
        (Some(Json::Number(x)), Some(Json::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Json::String(x)), Some(Json::String(y))) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

#[async_trait::async_trait]
impl Repository for SqliteRepository {
    fn collection(&self) -> &Arc<Collection> {
        &self.collection
    }

    async fn find(&self, options: &FindOptions) -> Result<Vec<Record>> {
        let sql = compile::select(DIALECT, &self.collection, options);
        let fields = compile::selected_fields(&self.collection, options);
        let rows = prepare(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.iter().map(|r| record(r, &fields)).collect()
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let sql = compile::count(DIALECT, &self.collection, filter);
        let row = prepare(&sql)
            .fetch_one(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let n: i64 = row.try_get(0).map_err(map_sqlx)?;
        Ok(n.max(0) as u64)
    }

    async fn create(&self, rows: &[WriteValues]) -> Result<Vec<Record>> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
        let mut out = Vec::with_capacity(rows.len());
        for values in rows {
            let sql = compile::insert(DIALECT, &self.collection, values, Some(&self.visible));
            let row = prepare(&sql).fetch_one(&mut *tx).await.map_err(map_sqlx)?;
            out.push(record(&row, &self.visible)?);
        }
        tx.commit().await.map_err(map_sqlx)?;
        Ok(out)
    }

    async fn update(&self, filter: Option<&Filter>, values: &WriteValues) -> Result<Vec<Record>> {
        if values.is_empty() {
            let options = FindOptions {
                filter: filter.cloned(),
                ..FindOptions::default()
            };
            let mut rows = self.find(&options).await?;
            self.sort_by_key(&mut rows);
            return Ok(rows);
        }
        // One statement: the rows are matched, written and read back atomically.
        let sql = compile::update(
            DIALECT,
            &self.collection,
            values,
            filter,
            Some(&self.visible),
        );
        let rows = prepare(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let mut records = rows
            .iter()
            .map(|r| record(r, &self.visible))
            .collect::<Result<Vec<_>>>()?;
        self.sort_by_key(&mut records);
        Ok(records)
    }

    async fn destroy(&self, filter: Option<&Filter>) -> Result<u64> {
        let sql = compile::delete(DIALECT, &self.collection, filter);
        let done = prepare(&sql).execute(&self.pool).await.map_err(map_sqlx)?;
        Ok(done.rows_affected())
    }
}
