//! Plugin subcommands (issue 21): a command a plugin offers is part of the `manifold`
//! command tree, runs with the main database opened as the service would open it, and a
//! name taken twice (by a built-in command or another plugin) is refused naming both.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use manifold_core::Result;
use manifold_server::clap::{Arg, ArgMatches, Command};
use manifold_server::{CliCommand, CommandContext, Manifold, Plugin, PluginContext};

/// `hello --name N`: records who it greeted and how many collections main has.
struct Hello {
    greeted: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl CliCommand for Hello {
    fn command(&self) -> Command {
        Command::new("hello")
            .about("Greet someone from the command line")
            .arg(Arg::new("name").long("name").required(true))
    }

    async fn run(&self, matches: &ArgMatches, ctx: &CommandContext) -> Result<()> {
        let name = matches
            .get_one::<String>("name")
            .cloned()
            .unwrap_or_default();
        // The main database is open and migrated: its accounts' tables are there.
        let users = ctx.main()?.collection("users").is_some();
        self.greeted
            .lock()
            .expect("not poisoned")
            .push(format!("{name} (users table: {users})"));
        Ok(())
    }
}

/// A plugin whose commands are given by the test.
struct Greeter {
    name: &'static str,
    commands: Vec<Arc<dyn CliCommand>>,
}

#[async_trait::async_trait]
impl Plugin for Greeter {
    fn name(&self) -> &str {
        self.name
    }

    fn commands(&self) -> Vec<Arc<dyn CliCommand>> {
        self.commands.clone()
    }

    async fn load(&self, _app: &mut PluginContext<'_>) -> Result<()> {
        Ok(())
    }
}

fn greeter(name: &'static str, command: &'static str) -> Arc<dyn Plugin> {
    struct Named(&'static str);
    #[async_trait::async_trait]
    impl CliCommand for Named {
        fn command(&self) -> Command {
            Command::new(self.0)
        }
        async fn run(&self, _: &ArgMatches, _: &CommandContext) -> Result<()> {
            Ok(())
        }
    }
    Arc::new(Greeter {
        name,
        commands: vec![Arc::new(Named(command))],
    })
}

#[test]
fn a_plugin_command_runs_with_the_main_database_open() {
    let greeted = Arc::new(Mutex::new(Vec::new()));
    let plugin = Greeter {
        name: "greeter",
        commands: vec![Arc::new(Hello {
            greeted: greeted.clone(),
        })],
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let main_db = format!("sqlite://{}/main.sqlite", dir.path().display());
    let code = Manifold::builder().plugin(Arc::new(plugin)).run_with_args([
        "manifold",
        "hello",
        "--name",
        "x",
        "--main-db",
        &main_db,
        "--root-password",
        "cli-plugins-root",
    ]);
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(
        *greeted.lock().expect("not poisoned"),
        ["x (users table: true)"]
    );
}

#[test]
fn manifold_help_lists_plugin_commands_beside_the_built_in_ones() {
    let greeted = Arc::new(Mutex::new(Vec::new()));
    let plugin = Greeter {
        name: "greeter",
        commands: vec![Arc::new(Hello { greeted })],
    };
    let mut tree = Manifold::builder()
        .plugin(Arc::new(plugin))
        .command()
        .expect("no clash");
    let help = tree.render_help().to_string();
    for line in [
        "serve ",
        "migrate ",
        "users ",
        "api-keys ",
        "hello     Greet someone from the command line",
    ] {
        assert!(help.contains(line), "--help lists {line:?}:\n{help}");
    }
}

#[test]
fn a_command_name_taken_twice_is_refused_naming_both() {
    let clash = Manifold::builder()
        .plugin(greeter("rogue", "serve"))
        .command()
        .expect_err("serve is built in");
    assert_eq!(
        clash.message(),
        r#"plugin "rogue": its command "serve" clashes with the built-in command "serve""#
    );
    let clash = Manifold::builder()
        .plugin(greeter("first", "sync"))
        .plugin(greeter("second", "sync"))
        .command()
        .expect_err("sync is taken");
    assert_eq!(
        clash.message(),
        r#"plugin "second": its command "sync" clashes with plugin "first"'s command "sync""#
    );
    let clash = Manifold::builder()
        .plugin(greeter("accounts", "users"))
        .command()
        .expect_err("users is the built-in plugin's");
    assert!(
        clash
            .message()
            .contains(r#"plugin "account-commands"'s command "users""#),
        "{clash}"
    );
    // The program refuses to run at all rather than pick one.
    let code = Manifold::builder()
        .plugin(greeter("rogue", "serve"))
        .run_with_args(["manifold", "serve"]);
    assert_eq!(code, ExitCode::FAILURE);
}
