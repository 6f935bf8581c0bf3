//! Builds the OpenAPI 3.0 document of one data source, as its caller may use it: the
//! collections and actions the caller's roles allow, each record's schema from the
//! collection's fields as they are now.

use manifold_core::Error;
use manifold_core::acl::Acl;
use manifold_core::data_source::DataSourceManager;
use manifold_core::schema::{AssociationKind, Collection};
use openapiv3::{
    Components, Info, IntegerFormat, MediaType, OpenAPI, Operation, Parameter, ParameterData,
    ParameterSchemaOrContent, PathItem, Paths, ReferenceOr, RequestBody, Response, Responses,
    Schema, SecurityScheme, Server, StatusCode, Type,
};

use super::schemas;

/// Which part of a source a document describes (`?ns=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// The source's own resources and every collection (no `ns`).
    Everything,
    /// Every collection (`collections`).
    Collections,
    /// One collection and its associations (`collections/<name>`).
    Collection(String),
    /// The source's own resources (`core`): `auth`, `dataSources`, `collections`, ….
    Core,
}

impl Namespace {
    /// `ns` as a client sent it; an unknown one is a 400 naming it.
    pub fn parse(ns: Option<&str>) -> manifold_core::Result<Self> {
        match ns.map(str::trim).filter(|ns| !ns.is_empty()) {
            None => Ok(Self::Everything),
            Some("collections") => Ok(Self::Collections),
            Some("core") => Ok(Self::Core),
            Some(other) => match other.strip_prefix("collections/") {
                Some(name) if !name.is_empty() => Ok(Self::Collection(name.to_owned())),
                _ => Err(Error::bad_request(format!(
                    "ns: expected core, collections or collections/<name>, got {other:?}"
                ))),
            },
        }
    }
}

/// What a document is built from.
pub struct Describe<'a> {
    /// The source's key; a source other than `main` needs the `X-Data-Source` header.
    pub key: &'a str,
    /// Which actions only read, and are described on `GET`.
    pub reads: &'a DataSourceManager,
    /// The source's collections, as they are now.
    pub collections: Vec<std::sync::Arc<Collection>>,
    /// The source's permissions, and the roles the caller acts in.
    pub acl: &'a Acl,
    pub roles: Vec<&'a str>,
    /// Where the API is served (`/api`).
    pub prefix: &'a str,
    /// Whether the source is the main database.
    pub is_main: bool,
    /// The source's resources other than its collections' defaults (`auth`, `dataSources`,
    /// `collections`, …) with the actions the caller may run, for the `core` part.
    pub core: Vec<(String, Vec<String>)>,
}

/// The actions of a collection resource.
const COLLECTION_ACTIONS: &[&str] = &[
    "list",
    "get",
    "create",
    "update",
    "destroy",
    "firstOrCreate",
    "updateOrCreate",
];

/// The actions of a relation to many records; `belongsToMany` adds `toggle`.
const TO_MANY_ACTIONS: &[&str] = &[
    "list", "get", "create", "update", "destroy", "add", "remove", "set",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

/// The method an action is sent with: `GET` for the actions that only read (the rule
/// crate::http applies), `POST` for the rest.
fn method_of(reads: &DataSourceManager, action: &str) -> Method {
    if reads.is_read_action(action) {
        Method::Get
    } else {
        Method::Post
    }
}

impl Describe<'_> {
    /// The document for `ns`; a collection the caller may not see is a 404, as one that
    /// does not exist.
    pub fn document(&self, ns: &Namespace) -> manifold_core::Result<OpenAPI> {
        let mut paths = Paths::default();
        let mut components = base_components(self.key, self.is_main);
        if matches!(ns, Namespace::Everything | Namespace::Core) {
            self.core_paths(&mut paths);
        }
        let visible: Vec<&Collection> = match ns {
            Namespace::Core => Vec::new(),
            Namespace::Everything | Namespace::Collections => self
                .collections
                .iter()
                .map(|c| &**c)
                .filter(|c| self.sees(c.name()))
                .collect(),
            Namespace::Collection(name) => {
                let found = self
                    .collections
                    .iter()
                    .find(|c| c.name() == name && self.sees(name))
                    .ok_or_else(|| {
                        Error::not_found(format!("collection {name:?} in data source {}", self.key))
                    })?;
                vec![&**found]
            }
        };
        for collection in &visible {
            self.describe_collection(collection, &mut paths, &mut components);
        }
        // The targets of described relations, described or not themselves (one collection).
        for collection in &visible {
            for association in &collection.associations {
                let described = components.schemas.contains_key(&association.target);
                let target = self
                    .collections
                    .iter()
                    .find(|c| c.name() == association.target && self.sees(c.name()));
                if let (false, Some(target)) = (described, target) {
                    self.schemas_of(target, &mut components);
                }
            }
        }
        Ok(OpenAPI {
            openapi: "3.0.3".into(),
            info: Info {
                title: format!("Manifold API: data source {}", self.key),
                description: Some(
                    "NocoBase's resource and action API over one data source. Generated from \
                     the source's schema for the caller's roles."
                        .into(),
                ),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Info::default()
            },
            servers: vec![Server {
                url: self.prefix.to_owned(),
                ..Server::default()
            }],
            paths,
            components: Some(components),
            security: Some(vec![
                [("bearer".to_owned(), Vec::new())].into_iter().collect(),
            ]),
            ..OpenAPI::default()
        })
    }

    /// Whether the caller may read `collection` at all.
    fn sees(&self, collection: &str) -> bool {
        ["list", "get"].iter().any(|action| {
            self.acl
                .permission(&self.roles, collection, action)
                .is_some()
        })
    }

    fn describe_collection(
        &self,
        collection: &Collection,
        paths: &mut Paths,
        components: &mut Components,
    ) {
        self.schemas_of(collection, components);
        let name = collection.name();
        let write_schema = format!("{name}.write");
        for action in COLLECTION_ACTIONS {
            let method = method_of(self.reads, action);
            let writes = method == Method::Post;
            if (writes && collection.is_view)
                || self.acl.permission(&self.roles, name, action).is_none()
            {
                continue;
            }
            let body = writes && !matches!(*action, "destroy");
            let operation = self.operation(
                name,
                action,
                query_parameters(action),
                body.then(|| match *action {
                    // `create` takes one record or a list of them.
                    "create" => ReferenceOr::Item(schemas::one_or_many(&write_schema)),
                    _ => schemas::reference(&write_schema),
                }),
                answer(action, name),
            );
            paths.paths.insert(
                format!("/{name}:{action}"),
                ReferenceOr::Item(path_item(method, operation)),
            );
        }
        for association in &collection.associations {
            self.describe_association(collection, association, paths);
        }
    }

    /// The read and write schemas of `collection`, as the caller may use it.
    fn schemas_of(&self, collection: &Collection, components: &mut Components) {
        let name = collection.name();
        let read_fields = self
            .acl
            .permission(&self.roles, name, "get")
            .or_else(|| self.acl.permission(&self.roles, name, "list"))
            .and_then(|p| p.fields);
        let write_fields = self
            .acl
            .permission(&self.roles, name, "create")
            .and_then(|p| p.fields);
        components.schemas.insert(
            name.to_owned(),
            ReferenceOr::Item(schemas::record(collection, read_fields.as_deref())),
        );
        let write_schema = format!("{name}.write");
        if !collection.is_view {
            components.schemas.insert(
                write_schema,
                ReferenceOr::Item(schemas::write(collection, write_fields.as_deref())),
            );
        }
    }

    /// The paths of `association`'s actions, those its kind takes that the caller's roles
    /// may run (the ACL's own rule, `Acl::permits_association`).
    fn describe_association(
        &self,
        collection: &Collection,
        association: &manifold_core::schema::Association,
        paths: &mut Paths,
    ) {
        let target = &association.target;
        if !self.sees(target) {
            return;
        }
        let actions: &[&str] = match association.kind {
            AssociationKind::BelongsTo => &["get", "set", "remove"],
            AssociationKind::HasOne => &["get", "create", "update", "destroy", "set", "remove"],
            AssociationKind::HasMany | AssociationKind::BelongsToMany => TO_MANY_ACTIONS,
        };
        let toggle = (association.kind == AssociationKind::BelongsToMany).then_some("toggle");
        let resource = format!("{}.{}", collection.name(), association.name);
        let write_schema = format!("{target}.write");
        for action in actions.iter().copied().chain(toggle) {
            if !self
                .acl
                .permits_association(&self.roles, collection.name(), association, action)
            {
                continue;
            }
            let body = match action {
                "add" | "remove" | "set" | "toggle" => Some(ReferenceOr::Item(schemas::any())),
                "create" => Some(ReferenceOr::Item(schemas::one_or_many(&write_schema))),
                "update" => Some(schemas::reference(&write_schema)),
                _ => None,
            };
            let mut parameters = vec![path_parameter("collectionIndex")];
            parameters.extend(query_parameters(action));
            let operation =
                self.operation(&resource, action, parameters, body, answer(action, target));
            paths.paths.insert(
                format!(
                    "/{}/{{collectionIndex}}/{}:{action}",
                    collection.name(),
                    association.name
                ),
                ReferenceOr::Item(path_item(method_of(self.reads, action), operation)),
            );
        }
    }

    /// The paths of the source's own resources (`auth:signIn`, `dataSources:list`,
    /// `dataSources/{associatedIndex}/roles:list`, …). Their bodies and answers are
    /// described as any JSON: docs/api.md has their shapes.
    fn core_paths(&self, paths: &mut Paths) {
        for (resource, actions) in &self.core {
            for action in actions {
                let method = method_of(self.reads, action);
                let (path, mut parameters) = match resource.split_once('.') {
                    Some((owner, name)) => (
                        format!("/{owner}/{{associatedIndex}}/{name}:{action}"),
                        vec![path_parameter("associatedIndex")],
                    ),
                    None => (format!("/{resource}:{action}"), Vec::new()),
                };
                parameters.extend(query_parameters(action));
                let body = (method == Method::Post).then(|| ReferenceOr::Item(schemas::any()));
                let ok = ReferenceOr::Item(Response {
                    description: format!("{resource}:{action}: the answer"),
                    content: json_content(ReferenceOr::Item(schemas::any())),
                    ..Response::default()
                });
                let mut operation = self.operation(resource, action, parameters, body, ok);
                if resource == "auth" && action == "signIn" {
                    // Signing in is how a caller gets the token.
                    operation.security = Some(Vec::new());
                }
                paths
                    .paths
                    .insert(path, ReferenceOr::Item(path_item(method, operation)));
            }
        }
    }

    fn operation(
        &self,
        resource: &str,
        action: &str,
        mut parameters: Vec<ReferenceOr<Parameter>>,
        body: Option<ReferenceOr<Schema>>,
        ok: ReferenceOr<Response>,
    ) -> Operation {
        if !self.is_main {
            parameters.push(ReferenceOr::Reference {
                reference: "#/components/parameters/X-Data-Source".into(),
            });
        }
        let mut responses = Responses::default();
        responses.responses.insert(StatusCode::Code(200), ok);
        add_errors(&mut responses);
        Operation {
            tags: vec![resource.split('.').next().unwrap_or(resource).to_owned()],
            summary: Some(format!("{resource}:{action}")),
            operation_id: Some(format!("{resource}:{action}")),
            parameters,
            request_body: body.map(|schema| {
                ReferenceOr::Item(RequestBody {
                    content: json_content(schema),
                    required: false,
                    ..RequestBody::default()
                })
            }),
            responses,
            ..Operation::default()
        }
    }
}

/// The statuses an action can fail with (docs/api.md §10), each the error answer. Listed
/// rather than a `default`, so a status the document does not name (a 500 above all) is a
/// contract violation.
const ERROR_STATUSES: &[u16] = &[400, 401, 403, 404, 409, 413, 503, 504];

fn add_errors(responses: &mut Responses) {
    for status in ERROR_STATUSES {
        responses.responses.insert(
            StatusCode::Code(*status),
            ReferenceOr::Reference {
                reference: "#/components/responses/error".into(),
            },
        );
    }
}

fn path_item(method: Method, operation: Operation) -> PathItem {
    match method {
        Method::Get => PathItem {
            get: Some(operation),
            ..PathItem::default()
        },
        Method::Post => PathItem {
            post: Some(operation),
            ..PathItem::default()
        },
    }
}

fn json_content(schema: ReferenceOr<Schema>) -> openapiv3::Content {
    [(
        "application/json".to_owned(),
        MediaType {
            schema: Some(schema),
            ..MediaType::default()
        },
    )]
    .into_iter()
    .collect()
}

/// The shared query parameters, declared once in the components.
const SHARED_PARAMETERS: &[(&str, &str, ParameterKind)] = &[
    (
        "filterByTk",
        "The record's key (or keys, as an array).",
        ParameterKind::Text,
    ),
    (
        "filter",
        "A filter as JSON, NocoBase's operators (docs/filters.md).",
        ParameterKind::Json,
    ),
    (
        "sort",
        "Fields to sort by, `-` before one for descending, comma-separated.",
        ParameterKind::Text,
    ),
    (
        "fields",
        "Only these fields, comma-separated.",
        ParameterKind::Text,
    ),
    (
        "appends",
        "Relations to embed, comma-separated, dotted for nested ones.",
        ParameterKind::Text,
    ),
    (
        "except",
        "Leave these fields out, comma-separated.",
        ParameterKind::Text,
    ),
    ("page", "The page, from 1.", ParameterKind::Integer),
    ("pageSize", "Records per page.", ParameterKind::Integer),
    (
        "paginate",
        "false for every record at once (bounded by the server's limit).",
        ParameterKind::Boolean,
    ),
    (
        "whitelist",
        "Only these fields of the values are written, comma-separated.",
        ParameterKind::Text,
    ),
    (
        "blacklist",
        "These fields of the values are not written, comma-separated.",
        ParameterKind::Text,
    ),
    (
        "filterKeys",
        "The fields that find the record to update or return, comma-separated.",
        ParameterKind::Text,
    ),
];

#[derive(Clone, Copy)]
enum ParameterKind {
    Text,
    /// A JSON object in the query string (`filter`).
    Json,
    Integer,
    Boolean,
}

/// The shared parameters `action` takes.
fn query_parameters(action: &str) -> Vec<ReferenceOr<Parameter>> {
    let names: &[&str] = match action {
        "list" => &[
            "filter", "sort", "fields", "appends", "except", "page", "pageSize", "paginate",
        ],
        "get" => &["filterByTk", "filter", "fields", "appends", "except"],
        "create" => &["whitelist", "blacklist"],
        "update" => &["filterByTk", "filter", "whitelist", "blacklist"],
        "destroy" => &["filterByTk", "filter"],
        "firstOrCreate" | "updateOrCreate" => &["filterKeys", "whitelist", "blacklist"],
        "add" | "remove" | "set" | "toggle" => &["filterByTk"],
        _ => &[],
    };
    names
        .iter()
        .map(|name| ReferenceOr::Reference {
            reference: format!("#/components/parameters/{name}"),
        })
        .collect()
}

fn path_parameter(name: &str) -> ReferenceOr<Parameter> {
    ReferenceOr::Item(Parameter::Path {
        parameter_data: ParameterData {
            name: name.to_owned(),
            description: Some("The key of the record whose relation this is.".into()),
            required: true,
            deprecated: None,
            format: ParameterSchemaOrContent::Schema(ReferenceOr::Item(schemas::string(None))),
            example: None,
            examples: Default::default(),
            explode: None,
            extensions: Default::default(),
        },
        style: Default::default(),
    })
}

/// The answer of `action` on records of `schema`: `{data}` around a record, a list with
/// its `meta`, or whatever the action returns.
fn answer(action: &str, schema: &str) -> ReferenceOr<Response> {
    let data = match action {
        "list" => schemas::array(schemas::reference(schema)),
        // A record, or null when none matched.
        "get" | "firstOrCreate" | "updateOrCreate" => schemas::nullable(schema),
        // One record created, or the list of them when the body was a list.
        "create" => schemas::one_or_many(schema),
        _ => schemas::any(),
    };
    let mut properties = vec![("data".to_owned(), data)];
    if action == "list" {
        properties.push((
            "meta".to_owned(),
            schemas::object(
                ["count", "page", "pageSize", "totalPage"]
                    .into_iter()
                    .map(|k| (k.to_owned(), schemas::integer(IntegerFormat::Int64)))
                    .collect(),
                Vec::new(),
            ),
        ));
    }
    ReferenceOr::Item(Response {
        description: format!("{action}: the answer"),
        content: json_content(ReferenceOr::Item(schemas::object(properties, Vec::new()))),
        ..Response::default()
    })
}

/// The components every document shares: the error answer, the bearer scheme, the shared
/// parameters and, for a source other than main, the `X-Data-Source` header.
fn base_components(key: &str, is_main: bool) -> Components {
    let mut components = Components::default();
    let message = schemas::string(None);
    let error = schemas::object(
        vec![(
            "errors".to_owned(),
            schemas::array(ReferenceOr::Item(schemas::object(
                vec![
                    ("message".to_owned(), message),
                    ("code".to_owned(), schemas::string(None)),
                ],
                vec!["message".to_owned()],
            ))),
        )],
        vec!["errors".to_owned()],
    );
    components
        .schemas
        .insert("error".into(), ReferenceOr::Item(error));
    components.responses.insert(
        "error".into(),
        ReferenceOr::Item(Response {
            description: "An error: what was wrong, naming the bad part".into(),
            content: json_content(schemas::reference("error")),
            ..Response::default()
        }),
    );
    components.security_schemes.insert(
        "bearer".into(),
        ReferenceOr::Item(SecurityScheme::HTTP {
            scheme: "bearer".into(),
            bearer_format: Some("JWT or API key".into()),
            description: Some("A token from auth:signIn, or an API key.".into()),
            extensions: Default::default(),
        }),
    );
    for (name, description, kind) in SHARED_PARAMETERS {
        let schema = match kind {
            ParameterKind::Text => schemas::string(None),
            ParameterKind::Json => schemas::object(Vec::new(), Vec::new()),
            ParameterKind::Integer => schemas::integer(IntegerFormat::Int64),
            ParameterKind::Boolean => schemas::of(Type::Boolean(Default::default())),
        };
        let mut data = parameter_data(name, description, false, schema);
        if let (ParameterKind::Json, ParameterSchemaOrContent::Schema(schema)) =
            (kind, &data.format)
        {
            data.format = ParameterSchemaOrContent::Content(json_content(schema.clone()));
        }
        components.parameters.insert(
            (*name).to_owned(),
            ReferenceOr::Item(Parameter::Query {
                parameter_data: data,
                allow_reserved: false,
                style: Default::default(),
                allow_empty_value: None,
            }),
        );
    }
    if !is_main {
        let mut source = schemas::string(None);
        if let openapiv3::SchemaKind::Type(Type::String(s)) = &mut source.schema_kind {
            s.enumeration = vec![Some(key.to_owned())];
        }
        components.parameters.insert(
            "X-Data-Source".into(),
            ReferenceOr::Item(Parameter::Header {
                parameter_data: parameter_data(
                    "X-Data-Source",
                    "The data source this document describes.",
                    true,
                    source,
                ),
                style: Default::default(),
            }),
        );
    }
    components
}

fn parameter_data(name: &str, description: &str, required: bool, schema: Schema) -> ParameterData {
    ParameterData {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        required,
        deprecated: None,
        format: ParameterSchemaOrContent::Schema(ReferenceOr::Item(schema)),
        example: None,
        examples: Default::default(),
        explode: None,
        extensions: Default::default(),
    }
}
