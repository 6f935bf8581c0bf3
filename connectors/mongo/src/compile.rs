//! The filter AST and find options compiled to MongoDB query documents and aggregation
//! pipelines, following the MongoDB mapping of the filter spec (filters.md §9).
//!
//! Every field path comes from the schema (a `FieldRef` resolved by the core) and every
//! operand is a typed value converted to BSON, never text spliced into an operator: string
//! operands of text operators are regex-escaped, and literal arrays inside `$expr` are
//! wrapped in `$literal` so a value such as `"$password"` stays a value.

use manifold_core::error::{Error, Result};
use manifold_core::filter::{
    Comparison, Condition, FieldRef, Filter, LikePattern, Predicate, TextMatch,
};
use manifold_core::query::FindOptions;
use manifold_core::schema::{Collection, FieldType};
use manifold_core::value::Value;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};

use crate::codec::{OBJECT_ID, Storage, to_bson};

/// The prefix of the helper fields a sort adds (one per sort key: 1 when the value is
/// null or missing), removed again before documents leave the pipeline.
const NULL_FLAG: &str = "__manifold_null_";

/// Compiles filters and reads for one collection.
#[derive(Debug, Clone, Copy)]
pub struct Compiler<'c> {
    collection: &'c Collection,
}

impl<'c> Compiler<'c> {
    /// A compiler for `collection`, whose schema says which fields hold ObjectIds.
    pub fn new(collection: &'c Collection) -> Self {
        Self { collection }
    }

    /// How `field` stores its values.
    pub(crate) fn storage(&self, field: &FieldRef) -> Storage {
        let object_id = self
            .collection
            .field(&field.name)
            .is_some_and(|f| f.raw_type == OBJECT_ID);
        Storage {
            field_type: field.field_type,
            object_id,
        }
    }

    /// `value` as `field` stores it.
    pub fn value(&self, field: &FieldRef, value: &Value) -> Result<Bson> {
        to_bson(self.storage(field), value)
    }

    fn values(&self, field: &FieldRef, values: &[Value]) -> Result<Bson> {
        values
            .iter()
            .map(|v| self.value(field, v))
            .collect::<Result<Vec<_>>>()
            .map(Bson::Array)
    }

    /// The stored forms equal to `values` as the API renders them: on a text field, a
    /// 24-digit hex operand also stands for the ObjectId rendered as that hex, so a
    /// reference field that other applications filled with ObjectIds (alone or mixed with
    /// their hex text) matches the keys clients read.
    fn equal_forms(&self, field: &FieldRef, values: &[Value]) -> Result<Vec<Bson>> {
        let textual = matches!(field.field_type, FieldType::String | FieldType::Text)
            && !self.storage(field).object_id;
        let mut forms = Vec::with_capacity(values.len());
        for v in values {
            forms.push(self.value(field, v)?);
            if textual
                && let Value::Text(text) = v
                && let Ok(id) = ObjectId::parse_str(text)
            {
                forms.push(Bson::ObjectId(id));
            }
        }
        Ok(forms)
    }

    /// The query document of `filter`; `None` matches every document.
    pub fn filter(&self, filter: Option<&Filter>) -> Result<Document> {
        match filter {
            None => Ok(Document::new()),
            Some(f) => self.node(f),
        }
    }

    fn node(&self, filter: &Filter) -> Result<Document> {
        Ok(match filter {
            Filter::And(items) if items.is_empty() => Document::new(),
            Filter::And(items) if items.len() == 1 => self.node(&items[0])?,
            Filter::And(items) => doc! { "$and": self.nodes(items)? },
            // An empty disjunction holds for no document; `$or: []` would be an error.
            Filter::Or(items) if items.is_empty() => doc! { "$nor": [{}] },
            Filter::Or(items) => doc! { "$or": self.nodes(items)? },
            Filter::Condition(c) => self.condition(c)?,
        })
    }

    fn nodes(&self, items: &[Filter]) -> Result<Vec<Document>> {
        items.iter().map(|f| self.node(f)).collect()
    }

    fn condition(&self, c: &Condition) -> Result<Document> {
        let field = &c.field;
        refuse_association_path(field, "filter")?;
        let col = field.column.as_str();
        let path = format!("${col}");
        let text_empty = matches!(field.field_type, FieldType::String | FieldType::Text);
        Ok(match &c.predicate {
            // `{f: null}` matches null and missing alike: both are SQL's NULL here.
            Predicate::IsNull => doc! { col: Bson::Null },
            Predicate::IsNotNull => doc! { col: { "$ne": Bson::Null } },
            Predicate::Eq(v) => {
                match self.equal_forms(field, std::slice::from_ref(v))?.as_slice() {
                    [one] => doc! { col: { "$eq": one } },
                    many => doc! { col: { "$in": many } },
                }
            }
            // Mongo's `$ne` and `$nin` already include null and missing documents, which is
            // SQL's `(c <> v OR c IS NULL)`.
            Predicate::Ne(v) => {
                match self.equal_forms(field, std::slice::from_ref(v))?.as_slice() {
                    [one] => doc! { col: { "$ne": one } },
                    many => doc! { col: { "$nin": many } },
                }
            }
            Predicate::In(vs) => doc! { col: { "$in": self.equal_forms(field, vs)? } },
            Predicate::NotIn(vs) => doc! { col: { "$nin": self.equal_forms(field, vs)? } },
            // Range operators never match null or missing values: MongoDB compares only
            // within a type class, and operands were converted to the field's type.
            Predicate::Compare(cmp, v) => {
                let value = self.value(field, v)?;
                match cmp {
                    // `<>` without the NULL rows that `Predicate::Ne` includes.
                    Comparison::Ne => doc! { col: { "$nin": [value, Bson::Null] } },
                    Comparison::Gt => doc! { col: { "$gt": value } },
                    Comparison::Gte => doc! { col: { "$gte": value } },
                    Comparison::Lt => doc! { col: { "$lt": value } },
                    Comparison::Lte => doc! { col: { "$lte": value } },
                }
            }
            Predicate::Between(a, b) => {
                doc! { col: { "$gte": self.value(field, a)?, "$lte": self.value(field, b)? } }
            }
            Predicate::NotBetween(a, b) => doc! { "$or": [
                { col: { "$lt": self.value(field, a)? } },
                { col: { "$gt": self.value(field, b)? } },
            ] },
            Predicate::Text {
                mode,
                operands,
                negated,
            } => self.text(field, *mode, operands, *negated),
            Predicate::Like {
                pattern,
                case_insensitive,
                negated,
            } => self.like(field, pattern, *case_insensitive, *negated),
            Predicate::Empty if text_empty => doc! { col: { "$in": [Bson::Null, ""] } },
            Predicate::Empty => doc! { col: Bson::Null },
            Predicate::NotEmpty if text_empty => doc! { col: { "$nin": [Bson::Null, ""] } },
            Predicate::NotEmpty => doc! { col: { "$ne": Bson::Null } },
            Predicate::IsTrue => doc! { col: { "$eq": true } },
            // Null, missing and false.
            Predicate::IsFalsy => doc! { col: { "$ne": true } },
            // On an array `$in` holds when any element is one of the values, and `$nin`
            // when none is (null and missing included, like SQL's `$noneOf`).
            Predicate::ArrayAny(vs) => doc! { col: { "$in": self.values(field, vs)? } },
            Predicate::ArrayNone(vs) => doc! { col: { "$nin": self.values(field, vs)? } },
            Predicate::ArraySet { values, negated } => {
                let same = doc! { "$expr": { "$and": [
                    { "$isArray": &path },
                    { "$setEquals": [&path, { "$literal": self.values(field, values)? }] },
                ] } };
                if *negated {
                    doc! { "$nor": [same] }
                } else {
                    same
                }
            }
            Predicate::ArrayEmpty => doc! { "$or": [
                { col: Bson::Null },
                { col: { "$size": 0 } },
            ] },
            Predicate::ArrayNotEmpty => doc! { format!("{col}.0"): { "$exists": true } },
        })
    }

    /// Case-insensitive matching of any operand (or, negated, of none, excluding null).
    fn text(
        &self,
        field: &FieldRef,
        mode: TextMatch,
        operands: &[String],
        negated: bool,
    ) -> Document {
        let col = field.column.as_str();
        if operands.is_empty() {
            // Any of no operands holds nowhere; none of them holds for every value.
            return if negated {
                doc! { col: { "$ne": Bson::Null } }
            } else {
                doc! { col: { "$in": [] } }
            };
        }
        let pattern = |operand: &String| {
            let escaped = escape_regex(operand);
            match mode {
                TextMatch::Contains => escaped,
                TextMatch::StartsWith => format!("^{escaped}"),
                TextMatch::EndsWith => format!("{escaped}$"),
            }
        };
        // One small regex per operand rather than one alternation of them all: a long
        // list would make a pattern past what servers accept (SecantusDB caps it at 1,000
        // characters, MongoDB at 32,764 bytes).
        let mut each: Vec<Document> = operands
            .iter()
            .map(|o| self.regex(field, pattern(o), "i", negated))
            .collect();
        match (each.len(), negated) {
            (1, _) => each.pop().unwrap_or_default(),
            (_, false) => doc! { "$or": each },
            (_, true) => doc! { "$and": each },
        }
    }

    /// `$like` and friends as an anchored regex: `%` is `.*`, `_` is `.`, every other
    /// character literal.
    ///
    /// The `s` option lets the wildcards match line breaks, as SQL's do, and `\z` (not
    /// `$`, which also accepts a final newline) anchors at the very end.
    fn like(
        &self,
        field: &FieldRef,
        pattern: &LikePattern,
        case_insensitive: bool,
        negated: bool,
    ) -> Document {
        let re = format!("^{}\\z", pattern.render(".*", ".", escape_regex));
        let options = if case_insensitive { "is" } else { "s" };
        self.regex(field, re, options, negated)
    }

    /// `field` matches `pattern` (or, negated, is not null and does not).
    ///
    /// Text fields use `$regex`, which can use an index; other fields (numbers, dates,
    /// ObjectIds) are converted to text first, as the SQL sources cast to text.
    fn regex(&self, field: &FieldRef, pattern: String, options: &str, negated: bool) -> Document {
        let col = field.column.as_str();
        let storage = self.storage(field);
        let textual = matches!(
            field.field_type,
            FieldType::String | FieldType::Text | FieldType::Uuid
        ) && !storage.object_id;
        if textual {
            let re = doc! { "$regex": pattern, "$options": options };
            return if negated {
                doc! { col: { "$ne": Bson::Null, "$not": re } }
            } else {
                doc! { col: re }
            };
        }
        let matched = doc! { "$regexMatch": {
            "input": { "$convert": {
                "input": format!("${col}"), "to": "string", "onError": Bson::Null, "onNull": Bson::Null,
            } },
            "regex": { "$literal": pattern },
            "options": options,
        } };
        if negated {
            doc! { col: { "$ne": Bson::Null }, "$expr": { "$not": [matched] } }
        } else {
            doc! { "$expr": matched }
        }
    }

    /// The aggregation pipeline of a read: `$match`, then the sort with NULLs last, the
    /// window, and the projection.
    ///
    /// MongoDB sorts null and missing values first in ascending order and last in
    /// descending order; SQL's `NULLS LAST` is emulated by sorting first on a helper field
    /// that is 1 for null or missing values (the key field `_id` is never null and needs
    /// none).
    pub fn find_pipeline(&self, options: &FindOptions) -> Result<Vec<Document>> {
        let mut pipeline = Vec::new();
        let query = self.filter(options.filter.as_ref())?;
        if !query.is_empty() {
            pipeline.push(doc! { "$match": query });
        }
        let mut flags = Document::new();
        let mut sort = Document::new();
        for (i, key) in options.sort.iter().enumerate() {
            refuse_association_path(&key.field, "sort")?;
            let col = key.field.column.as_str();
            if sort.contains_key(col) {
                continue;
            }
            if col != "_id" {
                let flag = format!("{NULL_FLAG}{i}");
                flags.insert(
                    flag.clone(),
                    doc! { "$cond": [
                        { "$eq": [{ "$ifNull": [format!("${col}"), Bson::Null] }, Bson::Null] },
                        1,
                        0,
                    ] },
                );
                sort.insert(flag, 1);
            }
            sort.insert(col, if key.descending { -1 } else { 1 });
        }
        let helpers: Vec<String> = flags.keys().cloned().collect();
        if !flags.is_empty() {
            pipeline.push(doc! { "$addFields": flags });
        }
        if !sort.is_empty() {
            pipeline.push(doc! { "$sort": sort });
        }
        if let Some(offset) = options.offset.filter(|o| *o > 0) {
            pipeline.push(doc! { "$skip": clamp(offset) });
        }
        if let Some(limit) = options.limit {
            pipeline.push(doc! { "$limit": clamp(limit.max(1)) });
        }
        match &options.fields {
            Some(fields) => {
                let mut projection = Document::new();
                for f in fields {
                    projection.insert(f.column.clone(), 1);
                }
                if projection.is_empty() {
                    // No attribute asked for: the smallest document is its key.
                    projection.insert("_id", 1);
                } else if !projection.contains_key("_id") {
                    projection.insert("_id", 0);
                }
                pipeline.push(doc! { "$project": projection });
            }
            None if !helpers.is_empty() => {
                let exclude: Document = helpers.into_iter().map(|h| (h, Bson::Int32(0))).collect();
                pipeline.push(doc! { "$project": exclude });
            }
            None => {}
        }
        Ok(pipeline)
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Paths through associations need `$lookup` stages this compiler does not write yet.
fn refuse_association_path(field: &FieldRef, param: &str) -> Result<()> {
    match &field.via {
        Some(path) => Err(Error::bad_request(format!(
            "{param}: {}.{} goes through an association, which MongoDB data sources do not support in {param}s",
            path.key(),
            field.name
        ))),
        None => Ok(()),
    }
}

/// `text` as a regular expression that matches it literally: every ASCII character other
/// than letters, digits, `_` and space is backslash-escaped (a backslash before punctuation
/// is a literal in PCRE and in every engine compatible with it), control characters become
/// `\xHH`, and other characters stand for themselves.
pub fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ' ' || !c.is_ascii() {
            out.push(c);
        } else if c.is_ascii_graphic() {
            out.push('\\');
            out.push(c);
        } else {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use manifold_core::filter::parse_filter;
    use manifold_core::query::{add_key_tiebreaker, parse_sort};
    use manifold_core::schema::{Field, TableName};
    use serde_json::json;

    fn items() -> Collection {
        let mut id = Field::new("_id", FieldType::String);
        id.primary_key = true;
        id.raw_type = OBJECT_ID.into();
        Collection::new(
            "items",
            TableName::new("items"),
            vec![
                id,
                Field::new("name", FieldType::String),
                Field::new("score", FieldType::Integer),
                Field::new("tags", FieldType::Array),
            ],
        )
        .expect("valid")
    }

    fn compile(filter: serde_json::Value) -> Document {
        let c = items();
        let f = parse_filter(&c, &filter).expect("valid filter");
        Compiler::new(&c).filter(f.as_ref()).expect("compiles")
    }

    #[test]
    fn a_hex_operand_on_text_also_matches_the_object_id() {
        let hex = "65f1c0ffee00000000000001";
        let id = ObjectId::parse_str(hex).expect("hex");
        assert_eq!(
            compile(json!({"name": hex})),
            doc! {"name": {"$in": [hex, id]}}
        );
        assert_eq!(
            compile(json!({"name.$notIn": [hex, "x"]})),
            doc! {"name": {"$nin": [hex, id, "x"]}}
        );
        assert_eq!(compile(json!({"name": "x"})), doc! {"name": {"$eq": "x"}});
        assert_eq!(compile(json!({"_id": hex})), doc! {"_id": {"$eq": id}});
    }

    #[test]
    fn operators_follow_the_spec_mapping() {
        assert_eq!(compile(json!({"name": null})), doc! {"name": Bson::Null});
        assert_eq!(compile(json!({"score.$ne": 3})), doc! {"score": {"$ne": 3}});
        assert_eq!(
            compile(json!({"score.$notIn": [1, 2]})),
            doc! {"score": {"$nin": [1, 2]}}
        );
        assert_eq!(
            compile(json!({"score.$notBetween": [1, 2]})),
            doc! {"$or": [{"score": {"$lt": 1}}, {"score": {"$gt": 2}}]}
        );
        assert_eq!(
            compile(json!({"name.$empty": true})),
            doc! {"name": {"$in": [Bson::Null, ""]}}
        );
        assert_eq!(
            compile(json!({"tags.$arrayNotEmpty": true})),
            doc! {"tags.0": {"$exists": true}}
        );
        assert_eq!(
            compile(json!({"$or": [{"score": 1}, {"name": "a"}]})),
            doc! {"$or": [{"score": {"$eq": 1}}, {"name": {"$eq": "a"}}]}
        );
    }

    #[test]
    fn text_operands_are_escaped_and_case_insensitive() {
        assert_eq!(
            compile(json!({"name.$includes": "a.*+?()[]"})),
            doc! {"name": {"$regex": "a\\.\\*\\+\\?\\(\\)\\[\\]", "$options": "i"}}
        );
        assert_eq!(
            compile(json!({"name.$startsWith": ["x", "y$"]})),
            doc! {"$or": [
                {"name": {"$regex": "^x", "$options": "i"}},
                {"name": {"$regex": "^y\\$", "$options": "i"}},
            ]}
        );
        assert_eq!(
            compile(json!({"name.$notIncludes": "a"})),
            doc! {"name": {"$ne": Bson::Null, "$not": {"$regex": "a", "$options": "i"}}}
        );
        assert_eq!(escape_regex("a\u{0}b é"), "a\\x00b é");
    }

    #[test]
    fn like_patterns_are_anchored_regexes_with_only_their_wildcards_open() {
        assert_eq!(
            compile(json!({"name.$like": "%Ru_t.*%"})),
            doc! {"name": {"$regex": "^.*Ru.t\\.\\*.*\\z", "$options": "s"}}
        );
        assert_eq!(
            compile(json!({"name.$iLike": "50\\%(x)"})),
            doc! {"name": {"$regex": "^50\\%\\(x\\)\\z", "$options": "is"}}
        );
        assert_eq!(
            compile(json!({"name.$notILike": "a"})),
            doc! {"name": {"$ne": Bson::Null, "$not": {"$regex": "^a\\z", "$options": "is"}}}
        );
    }

    #[test]
    fn object_id_keys_are_converted_back() {
        let hex = "65f1c0ffee00000000000001";
        let d = compile(json!({"_id": hex}));
        let id = mongodb::bson::oid::ObjectId::parse_str(hex).expect("hex");
        assert_eq!(d, doc! {"_id": {"$eq": id}});
    }

    #[test]
    fn array_set_operands_stay_literal() {
        assert_eq!(
            compile(json!({"tags.$match": ["$secret", 1]})),
            doc! {"$expr": {"$and": [
                {"$isArray": "$tags"},
                {"$setEquals": ["$tags", {"$literal": ["$secret", 1]}]},
            ]}}
        );
    }

    #[test]
    fn sorting_puts_nulls_last_with_a_helper_field() {
        let c = items();
        let mut sort = parse_sort(&c, &["-score".into()]).expect("sort");
        add_key_tiebreaker(&c, &mut sort);
        let options = FindOptions {
            sort,
            offset: Some(2),
            limit: Some(5),
            ..FindOptions::default()
        };
        let pipeline = Compiler::new(&c).find_pipeline(&options).expect("pipeline");
        assert_eq!(
            pipeline,
            vec![
                doc! {"$addFields": {"__manifold_null_0": {"$cond": [
                    {"$eq": [{"$ifNull": ["$score", Bson::Null]}, Bson::Null]}, 1, 0
                ]}}},
                doc! {"$sort": {"__manifold_null_0": 1, "score": -1, "_id": 1}},
                doc! {"$skip": 2_i64},
                doc! {"$limit": 5_i64},
                doc! {"$project": {"__manifold_null_0": 0}},
            ]
        );
    }
}
