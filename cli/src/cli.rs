//! The command line: every command, flag and its `--help` text (clap derive).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Secure sandboxes for AI: drive Wrenn capsules, files and templates from the shell.
#[derive(Debug, Parser)]
#[command(
    name = "wrenn",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Print JSON for scripts: the API's JSON as received (errors as
    /// {"error":{"code","message"}} on stderr)
    #[arg(long, global = true)]
    pub json: bool,

    /// Config file [default: $XDG_CONFIG_HOME/wrenn/config.toml or ~/.config/wrenn/config.toml]
    #[arg(long, global = true, env = "WRENN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Save the control-plane URL and an API key (verified first) to the config file
    Login(LoginArgs),
    /// Create, list, inspect, pause, resume, snapshot and destroy capsules
    #[command(subcommand, visible_alias = "capsules")]
    Capsule(CapsuleCommand),
    /// Run a command in a capsule, streaming its output; exits with the command's exit code
    Exec(ExecArgs),
    /// An interactive terminal in a capsule; exits with the shell's exit code
    Shell(ShellArgs),
    /// Copy a file into or out of a capsule (CAPSULE:PATH names a path inside it)
    Cp(CpArgs),
    /// Show the logs of a template build
    Logs(LogsArgs),
    /// Build, list and delete templates
    #[command(subcommand, visible_alias = "templates")]
    Template(TemplateCommand),
    /// List, inspect and cancel template builds
    #[command(subcommand)]
    Builds(BuildsCommand),
    /// Print a shell completion script (e.g. `wrenn completions bash > /etc/bash_completion.d/wrenn`)
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The control plane's URL, e.g. https://wrenn.example.com [default: the saved one]
    #[arg(long, env = "WRENN_URL")]
    pub url: Option<String>,
    /// The API key (wrn_…); without it the key is read from stdin when that is not a
    /// terminal, else prompted for without echo
    #[arg(long, env = "WRENN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// A `KEY=VALUE` pair.
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

#[derive(Debug, Subcommand)]
pub enum CapsuleCommand {
    /// Create a capsule and wait until it runs
    Create(CreateArgs),
    /// The team's capsules (running, paused and in transition)
    #[command(visible_alias = "ls")]
    List,
    /// One capsule
    Get {
        /// Capsule id (sb_…)
        id: String,
    },
    /// Pause a running capsule (its memory is kept)
    Pause {
        /// Capsule id (sb_…)
        id: String,
    },
    /// Resume a paused capsule
    Resume {
        /// Capsule id (sb_…)
        id: String,
    },
    /// Destroy a capsule
    #[command(visible_alias = "rm")]
    Destroy {
        /// Capsule id (sb_…)
        id: String,
    },
    /// Save a capsule as a snapshot template (the capsule stays paused afterwards)
    Snapshot {
        /// Capsule id (sb_…)
        id: String,
        /// Template name [default: template-<8 hex>]
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Template name [default: the control plane's default base template]
    #[arg(long, short)]
    pub template: Option<String>,
    /// Virtual CPUs [server default: 1]
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Memory in MiB [server default: 512]
    #[arg(long)]
    pub memory_mb: Option<u32>,
    /// Disk size in MiB [server default: 2048]
    #[arg(long)]
    pub disk_mb: Option<u32>,
    /// Auto-pause after this many seconds without activity (0: never)
    #[arg(long)]
    pub timeout_sec: Option<u32>,
    /// Environment variable of the capsule's processes (repeatable)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Capsule id (sb_…)
    pub id: String,
    /// Working directory inside the capsule
    #[arg(long)]
    pub cwd: Option<String>,
    /// Environment variable (repeatable)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Stop the command after this many seconds and exit 124 [default: no limit]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u32>,
    /// The command and its arguments, after `--`
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Capsule id (sb_…)
    pub id: String,
    /// Re-attach to the terminal session with this tag (pty-…) instead of starting one
    #[arg(long, value_name = "TAG")]
    pub attach: Option<String>,
    /// Working directory of a new session
    #[arg(long, conflicts_with = "attach")]
    pub cwd: Option<String>,
    /// Environment variable of a new session (repeatable)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_env,
          conflicts_with = "attach")]
    pub env: Vec<(String, String)>,
    /// The program to run instead of a login shell (bash, else sh)
    #[arg(last = true, value_name = "CMD", conflicts_with = "attach")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// A local file (`-` for stdin) or CAPSULE:PATH
    pub source: String,
    /// A local path (`-` for stdout) or CAPSULE:PATH; a directory (or a path ending in /)
    /// receives the file under its own name
    pub destination: String,
    /// Never show a progress bar
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Build id (bld_…)
    pub build_id: String,
    /// Keep printing new entries until the build ends
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Build a template from a recipe (FROM, RUN, COPY, ENV, WORKDIR, USER, START, ...),
    /// following its logs
    Build(BuildArgs),
    /// The team's templates and the platform's
    #[command(visible_alias = "ls")]
    List,
    /// Delete one of the team's templates
    #[command(visible_alias = "rm")]
    Delete {
        /// Template name
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The recipe file
    pub recipe: PathBuf,
    /// Name of the template to build
    #[arg(long)]
    pub name: String,
    /// A file the recipe's COPY lines name, sent under its path relative to the recipe's
    /// directory (repeatable; a directory sends every file under it)
    #[arg(long = "file", short = 'f', value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Build even when an identical earlier build could be reused
    #[arg(long)]
    pub rebuild: bool,
    /// Build a platform template, visible to every team (the control plane allows this to
    /// platform administrators' sessions only, so API keys are refused)
    #[arg(long)]
    pub platform: bool,
    /// Submit the build and print it without following its logs
    #[arg(long)]
    pub detach: bool,
}

#[derive(Debug, Subcommand)]
pub enum BuildsCommand {
    /// The team's template builds
    #[command(visible_alias = "ls")]
    List,
    /// One build with its steps
    Get {
        /// Build id (bld_…)
        id: String,
    },
    /// Cancel a queued or running build
    Cancel {
        /// Build id (bld_…)
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_takes_the_command_after_the_separator() {
        let cli = Cli::try_parse_from([
            "wrenn", "exec", "sb_1", "--cwd", "/tmp", "-e", "A=b=c", "--", "sh", "-c", "exit 7",
        ])
        .unwrap();
        let Command::Exec(args) = cli.command else {
            panic!("not exec")
        };
        assert_eq!(args.command, ["sh", "-c", "exit 7"]);
        assert_eq!(args.env, [("A".to_string(), "b=c".to_string())]);
        assert_eq!(args.cwd.as_deref(), Some("/tmp"));
    }

    #[test]
    fn env_pairs_need_a_key() {
        assert!(parse_env("=x").is_err());
        assert!(parse_env("x").is_err());
        assert_eq!(parse_env("K=").unwrap(), ("K".into(), String::new()));
    }
}
