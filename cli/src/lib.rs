//! The `wrenn` command-line tool: capsules, exec, interactive shells, file copies and
//! template builds against a Wrenn control plane (REST and WebSocket, API.md).
//!
//! # Layout
//! - [`cli`]: the command line (clap derive); [`main`] parses it, runs the command on a
//!   small tokio runtime and turns the outcome into an exit code.
//! - [`config`]: where the control plane is and the API key (config file, environment).
//! - [`client`]: HTTP and WebSocket requests with `X-API-Key`, API errors as [`CliError`].
//! - [`output`]: tables and `key  value` blocks for people, JSON verbatim for scripts.
//! - One module per command family: [`login`], [`capsule`], [`exec`], [`shell`] (with
//!   [`terminal`]: raw mode, window size, prompts), [`cp`], [`template`] and [`builds`]
//!   (template builds, following their Server-Sent Events through [`sse`]).
//!
//! Data flows one way: argv → [`cli::Cli`] → a command function taking the [`client::Client`]
//! → stdout/stderr, and a `Result<i32, CliError>` whose `Ok` is the exit code (the remote
//! command's for `exec` and `shell`) and whose `Err` is printed once, by [`main`].

pub mod builds;
pub mod capsule;
pub mod cli;
pub mod client;
pub mod config;
pub mod cp;
pub mod error;
pub mod exec;
pub mod login;
pub mod output;
pub mod shell;
pub mod sse;
pub mod template;
pub mod terminal;

use clap::{CommandFactory, Parser};
use cli::{Cli, Command};
use client::Client;
use error::{CliError, Result};

/// Runs the command line of this process and returns the exit code.
pub fn main() -> i32 {
    // A bug must still read as a one-line error, never as a panic message with a backtrace
    // hint. (Terminal state is restored by the raw-mode guard's Drop while unwinding.)
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        eprintln!("error: internal error in wrenn: {message}");
    }));
    let cli = Cli::parse(); // usage errors exit 2 here
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(run(cli))));
    // Threads blocked reading stdin (shell) must not hold the exit up.
    runtime.shutdown_background();
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            e.report(json);
            e.exit_code()
        }
        Err(_) => 1,
    }
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<i32> {
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "wrenn", &mut script);
        output::out_bytes(&script)?;
        return Ok(0);
    }
    let config_path = config::path(cli.config.as_deref())?;
    let json = cli.json;
    let client = || -> Result<Client> { Client::new(&config::credentials(&config_path)?) };
    match cli.command {
        Command::Completions { .. } => Ok(0),
        Command::Login(args) => login::run(&config_path, args, json).await,
        Command::Capsule(command) => capsule::run(&client()?, command, json).await,
        Command::Exec(args) => exec::run(&client()?, args, json).await,
        Command::Shell(args) => shell::run(&client()?, args, json).await,
        Command::Cp(args) => {
            cp::check(&args)?;
            cp::run(&client()?, args, json).await
        }
        Command::Logs(args) => builds::logs(&client()?, args, json).await,
        Command::Template(command) => template::run(&client()?, command, json).await,
        Command::Builds(command) => builds::run(&client()?, command, json).await,
    }
}

/// A usage error found after parsing (exit 2).
pub fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}
