use super::*;
use crate::schema::{Collection, Field, FieldType, TableName};
use crate::value::Value;
use serde_json::{Value as Json, json};

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
    assert!(msg(json!({"score": {"$foo": 1}})).starts_with("filter.score.$foo: unknown operator"));
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
        operators: std::sync::Arc::new(OperatorSupport::of("toy", |op| !declined.contains(&op))),
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
