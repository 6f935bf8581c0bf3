//! Reading one column of many records without hashing its name for each of them.

use serde_json::Value as Json;

use crate::repository::Record;

/// Positions past this are read by name: walking that far costs what hashing does.
const MAX_POSITION: usize = 16;

/// One column of records that mostly share a layout, as the rows of one statement do.
/// Where the first record holds the column is remembered, and each record is read there
/// first: a record is a map whose every lookup by name hashes the name (SipHash), and a
/// page with its appends looks up about a hundred keys. A record whose layout differs is
/// read by name, so the answer is always what [`Record::get`] gives.
pub(super) struct Column<'a> {
    name: &'a str,
    position: Option<usize>,
}

impl<'a> Column<'a> {
    /// The column `name`, laid out as in `sample`.
    pub(super) fn new(name: &'a str, sample: Option<&Record>) -> Self {
        let position = sample.and_then(|r| r.keys().take(MAX_POSITION).position(|key| key == name));
        Self { name, position }
    }

    /// The value of this column in `record`.
    pub(super) fn of<'r>(&self, record: &'r Record) -> Option<&'r Json> {
        if let Some(position) = self.position
            && let Some((key, value)) = record.iter().nth(position)
            && key == self.name
        {
            return Some(value);
        }
        record.get(self.name)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(value: Json) -> Record {
        match value {
            Json::Object(map) => map,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn every_record_answers_as_a_lookup_by_name_would() {
        let sample = record(json!({ "id": 1, "postId": 7, "title": "a" }));
        let records = [
            sample.clone(),
            // Another layout: the remembered position holds another field.
            record(json!({ "postId": 8, "id": 2 })),
            // Shorter than the remembered position.
            record(json!({ "id": 3 })),
            record(json!({})),
        ];
        for name in ["id", "postId", "title", "missing"] {
            let column = Column::new(name, Some(&sample));
            for r in &records {
                assert_eq!(column.of(r), r.get(name), "{name} in {r:?}");
            }
            let unplaced = Column::new(name, None);
            for r in &records {
                assert_eq!(unplaced.of(r), r.get(name), "{name} in {r:?}, no sample");
            }
        }
    }

    #[test]
    fn a_column_past_the_walk_limit_is_read_by_name() {
        let wide: Record = (0..40).map(|i| (format!("f{i}"), json!(i))).collect();
        let column = Column::new("f30", Some(&wide));
        assert!(column.position.is_none());
        assert_eq!(column.of(&wide), Some(&json!(30)));
        let near = Column::new("f3", Some(&wide));
        assert_eq!(near.position, Some(3));
        assert_eq!(near.of(&wide), Some(&json!(3)));
    }
}
