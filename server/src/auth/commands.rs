//! `manifold users …` and `manifold api-keys …`: accounts and API keys administered from
//! the command line, for an operator who cannot reach the HTTP API yet (no administrator
//! can sign in, or the service is not running). They write what the HTTP actions write,
//! through the same store, hashing and key issuance, and tell the running replicas.
//!
//! Answers are JSON lines on standard output; nothing they print is logged, and a
//! password is only ever read from standard input (an argument shows in `ps`).

use std::sync::Arc;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches};
use manifold_core::{Error, Result};
use serde_json::{Map, Value as Json, json};

use super::store::{API_KEYS, ROLES, ROLES_USERS, USERS};
use super::{Auth, api_keys, as_i64, password};
use crate::commands::{CliCommand, CommandContext};
use crate::plugin::{Plugin, PluginContext};

/// The built-in plugin that offers the `users` and `api-keys` commands.
pub struct AccountCommands;

#[async_trait::async_trait]
impl Plugin for AccountCommands {
    fn name(&self) -> &str {
        "account-commands"
    }

    fn commands(&self) -> Vec<Arc<dyn CliCommand>> {
        vec![Arc::new(Users), Arc::new(ApiKeys)]
    }

    async fn load(&self, _app: &mut PluginContext<'_>) -> Result<()> {
        Ok(())
    }
}

fn username_arg() -> Arg {
    Arg::new("username")
        .long("username")
        .required(true)
        .help("The user's username")
}

fn password_stdin_arg() -> Arg {
    Arg::new("password-stdin")
        .long("password-stdin")
        .action(ArgAction::SetTrue)
        .help("Read the password from standard input (up to its first line break)")
}

/// A string argument clap has checked is present.
fn given<'a>(matches: &'a ArgMatches, id: &str) -> Result<&'a str> {
    matches
        .get_one::<String>(id)
        .map(String::as_str)
        .ok_or_else(|| Error::bad_request(format!("--{id} is required")))
}

/// The authentication service of the command's application.
fn auth(ctx: &CommandContext) -> Result<&Arc<Auth>> {
    ctx.app()
        .auth()
        .ok_or_else(|| Error::internal("the application has no authentication service"))
}

/// The id of the user called `username`, or an error naming it.
async fn user_id(auth: &Auth, username: &str) -> Result<i64> {
    auth.user_id(username)
        .await?
        .ok_or_else(|| Error::not_found(format!("--username: no user is called {username:?}")))
}

/// The password on standard input: its first line, without the line break.
async fn read_password() -> Result<String> {
    // The first line only, so an operator typing it need not close standard input; and
    // no more of it than a password may hold, so a stream without a line break is not
    // read into memory whole.
    let read = tokio::task::spawn_blocking(|| {
        let limit = u64::try_from(password::MAX_LENGTH + 2).unwrap_or(u64::MAX);
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::Read::take(std::io::stdin().lock(), limit),
            &mut line,
        )
        .map(|_| line)
    })
    .await
    .map_err(|e| Error::internal(format!("reading standard input stopped: {e}")))?
    .map_err(|e| {
        Error::bad_request(format!("cannot read the password from standard input: {e}"))
    })?;
    let password = read.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(Error::bad_request(
            "--password-stdin: standard input holds no password",
        ));
    }
    Ok(password)
}

fn print(line: &Json) {
    println!("{line}");
}

/// `manifold users create|set-password|list`.
struct Users;

#[async_trait::async_trait]
impl CliCommand for Users {
    fn command(&self) -> clap::Command {
        clap::Command::new("users")
            .about("Create users, set their passwords, and list them (in the main database)")
            .subcommand_required(true)
            .subcommand(
                clap::Command::new("create")
                    .about(
                        "Create a user; without --password-stdin a password is generated \
                         and printed once",
                    )
                    .arg(username_arg())
                    .arg(password_stdin_arg())
                    .arg(
                        Arg::new("role")
                            .long("role")
                            .action(ArgAction::Append)
                            .help(
                                "A role the user holds (repeat for more; the first is their \
                                 default). Without one: the roles marked default",
                            ),
                    ),
            )
            .subcommand(
                clap::Command::new("set-password")
                    .about("Set a user's password; their signed-in sessions end")
                    .arg(username_arg())
                    .arg(password_stdin_arg().required(true)),
            )
            .subcommand(
                clap::Command::new("list").about("List the users and their roles, one per line"),
            )
    }

    async fn run(&self, matches: &ArgMatches, ctx: &CommandContext) -> Result<()> {
        let auth = auth(ctx)?;
        match matches.subcommand() {
            Some(("create", args)) => create_user(auth, args).await,
            Some(("set-password", args)) => set_password(auth, args).await,
            Some(("list", _)) => list_users(auth).await,
            _ => Err(Error::bad_request(
                "name a subcommand: create, set-password or list",
            )),
        }
    }
}

async fn create_user(auth: &Auth, args: &ArgMatches) -> Result<()> {
    let username = given(args, "username")?.trim();
    if username.is_empty() {
        return Err(Error::bad_request("--username: a username is not empty"));
    }
    if auth.user_id(username).await?.is_some() {
        return Err(Error::conflict(format!(
            "--username: a user is already called {username:?}"
        )));
    }
    let mut roles: Vec<String> = args
        .get_many::<String>("role")
        .map(|roles| roles.cloned().collect())
        .unwrap_or_default();
    if roles.is_empty() {
        roles = auth.default_roles().await?;
    }
    for role in &roles {
        let known = auth
            .store
            .find_one(ROLES, &json!({ "name": role }), &[])
            .await?;
        if known.is_none() {
            return Err(Error::not_found(format!(
                "--role: no role is called {role:?}"
            )));
        }
    }
    let (password, generated) = if args.get_flag("password-stdin") {
        (read_password().await?, false)
    } else {
        (password::generate(), true)
    };
    let hash = password::hash(password.clone()).await?;
    let user = auth
        .store
        .insert(USERS, &json!({ "username": username, "password": hash }))
        .await?;
    let id = as_i64(user.get("id")).ok_or_else(|| Error::internal("the new user has no id"))?;
    for (at, role) in roles.iter().enumerate() {
        auth.store
            .insert(
                ROLES_USERS,
                &json!({ "userId": id, "roleName": role, "default": at == 0 }),
            )
            .await?;
    }
    // As a write to rolesUsers over HTTP: every replica reloads who holds which role.
    auth.permissions_changed().await?;
    let mut answer = json!({ "id": id, "username": username, "roles": roles });
    if generated {
        // Shown only now: the main database keeps its hash.
        answer["password"] = json!(password);
    }
    print(&answer);
    Ok(())
}

async fn set_password(auth: &Auth, args: &ArgMatches) -> Result<()> {
    let username = given(args, "username")?;
    let id = user_id(auth, username).await?;
    let hash = password::hash(read_password().await?).await?;
    let now = chrono::Utc::now().timestamp_millis();
    auth.store
        .update(
            USERS,
            &json!({ "id": id }),
            &json!({ "password": hash, "passwordChangeTz": now }),
        )
        .await?;
    // Sessions signed in before now are refused, on every replica.
    auth.sessions_ended(None).await?;
    print(&json!({ "id": id, "username": username }));
    Ok(())
}

/// Only these fields of a user are printed: never the password's hash, whatever the
/// table holds.
const LISTED_USER_FIELDS: &[&str] = &["id", "username", "nickname", "email"];

async fn list_users(auth: &Auth) -> Result<()> {
    let users = auth.store.find(USERS, &json!({}), &[]).await?;
    let links = auth.store.find(ROLES_USERS, &json!({}), &[]).await?;
    for user in users {
        let mut line = pick(&user, LISTED_USER_FIELDS);
        let id = as_i64(user.get("id"));
        let roles: Vec<&Json> = links
            .iter()
            .filter(|l| id.is_some() && as_i64(l.get("userId")) == id)
            .filter_map(|l| l.get("roleName"))
            .collect();
        line.insert("roles".into(), json!(roles));
        print(&Json::Object(line));
    }
    Ok(())
}

/// The `fields` of `record` that it has.
fn pick(record: &Map<String, Json>, fields: &[&str]) -> Map<String, Json> {
    fields
        .iter()
        .filter_map(|f| record.get(*f).map(|v| ((*f).to_owned(), v.clone())))
        .collect()
}

/// `manifold api-keys create|list|revoke`.
struct ApiKeys;

fn lifetime(text: &str) -> std::result::Result<Option<Duration>, String> {
    api_keys::lifetime(text).ok_or_else(|| format!("expected {}", api_keys::LIFETIMES))
}

#[async_trait::async_trait]
impl CliCommand for ApiKeys {
    fn command(&self) -> clap::Command {
        clap::Command::new("api-keys")
            .about("Create, list and revoke users' API keys (in the main database)")
            .subcommand_required(true)
            .subcommand(
                clap::Command::new("create")
                    .about("Create an API key and print it, once, on standard output")
                    .arg(username_arg().help("The user the key acts for"))
                    .arg(
                        Arg::new("role")
                            .long("role")
                            .required(true)
                            .help("The role the key acts in; the user must hold it"),
                    )
                    .arg(
                        Arg::new("name")
                            .long("name")
                            .required(true)
                            .help("What the key is for, as shown by list"),
                    )
                    .arg(
                        Arg::new("expires-in")
                            .long("expires-in")
                            .default_value("30d")
                            .value_parser(lifetime)
                            .help("How long the key works: 1d, 7d, 30d, 90d, never or a duration"),
                    ),
            )
            .subcommand(
                clap::Command::new("list")
                    .about("List a user's API keys (never the keys themselves), one per line")
                    .arg(username_arg()),
            )
            .subcommand(
                clap::Command::new("revoke")
                    .about("Revoke an API key: it stops working on every replica")
                    .arg(
                        Arg::new("id")
                            .long("id")
                            .required(true)
                            .value_parser(clap::value_parser!(i64))
                            .help("The key's id, as list shows it"),
                    ),
            )
    }

    async fn run(&self, matches: &ArgMatches, ctx: &CommandContext) -> Result<()> {
        let auth = auth(ctx)?;
        match matches.subcommand() {
            Some(("create", args)) => create_key(auth, args).await,
            Some(("list", args)) => list_keys(auth, args).await,
            Some(("revoke", args)) => revoke_key(auth, args).await,
            _ => Err(Error::bad_request(
                "name a subcommand: create, list or revoke",
            )),
        }
    }
}

async fn create_key(auth: &Auth, args: &ArgMatches) -> Result<()> {
    let username = given(args, "username")?;
    let role = given(args, "role")?;
    let id = user_id(auth, username).await?;
    let held = auth
        .store
        .find_one(ROLES_USERS, &json!({ "userId": id, "roleName": role }), &[])
        .await?;
    if held.is_none() {
        return Err(Error::bad_request(format!(
            "--role: the user {username:?} does not hold the role {role:?}"
        )));
    }
    let lifetime = args
        .get_one::<Option<Duration>>("expires-in")
        .copied()
        .unwrap_or(Some(api_keys::DEFAULT_LIFETIME));
    let (key_id, token) = auth
        .create_api_key(id, role.to_owned(), given(args, "name")?, lifetime)
        .await?;
    // The key alone on standard output, for `KEY=$(manifold api-keys create …)`.
    println!("{token}");
    eprintln!(
        "manifold: created API key {key_id} for {username:?} in the role {role:?} \
         (the key is shown only now)"
    );
    Ok(())
}

async fn list_keys(auth: &Auth, args: &ArgMatches) -> Result<()> {
    let id = user_id(auth, given(args, "username")?).await?;
    for key in auth
        .store
        .find(API_KEYS, &json!({ "createdById": id }), &[])
        .await?
    {
        print(&Json::Object(pick(
            &key,
            &["id", "name", "roleName", "expiresAt", "createdAt"],
        )));
    }
    Ok(())
}

async fn revoke_key(auth: &Auth, args: &ArgMatches) -> Result<()> {
    let id = args
        .get_one::<i64>("id")
        .copied()
        .ok_or_else(|| Error::bad_request("--id is required"))?;
    if auth.revoke_api_keys(&json!({ "id": id })).await? == 0 {
        return Err(Error::not_found(format!(
            "--id: no API key has the id {id}"
        )));
    }
    print(&json!({ "revoked": id }));
    Ok(())
}
