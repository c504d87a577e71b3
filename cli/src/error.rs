//! What can go wrong in a command, and how each failure is reported and mapped to an exit
//! code: 1 for API, network, configuration and local failures, 2 for usage errors (as clap
//! does for the ones it finds itself).

use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The control plane answered with an error (its envelope's message, verbatim).
    #[error("{message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// The response body as received, when it was the API's error envelope.
        raw: Option<String>,
    },
    /// The control plane could not be reached; `url` is what was asked for.
    #[error("cannot reach {url}: {detail}")]
    Network { url: String, detail: String },
    /// Missing credentials, an unsafe or unreadable config file.
    #[error("{0}")]
    Config(String),
    /// A command line that parsed but makes no sense (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Writing to stdout failed because the reader went away (`wrenn capsule list | head`):
    /// the process ends quietly.
    #[error("broken pipe")]
    BrokenPipe,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            // What a shell reports for a process killed by SIGPIPE.
            CliError::BrokenPipe => 141,
            _ => 1,
        }
    }

    /// A short machine-readable code, for `--json` error output.
    fn code(&self) -> &str {
        match self {
            CliError::Api { code, .. } => code,
            CliError::Network { .. } => "network_error",
            CliError::Config(_) => "config_error",
            CliError::Usage(_) => "usage_error",
            CliError::BrokenPipe => "broken_pipe",
            CliError::Other(_) => "error",
        }
    }

    /// Prints the error on stderr: `error: ...` for people, the API's envelope (or one of the
    /// same shape) with `--json`.
    pub fn report(&self, json_output: bool) {
        if matches!(self, CliError::BrokenPipe) {
            return;
        }
        if json_output {
            let line = match self {
                CliError::Api { raw: Some(raw), .. } => raw.trim().to_string(),
                _ => json!({"error": {"code": self.code(), "message": self.message()}}).to_string(),
            };
            eprintln!("{line}");
            return;
        }
        eprintln!("error: {}", self.message());
        if let CliError::Api { status: 401, .. } = self {
            eprintln!("hint: check the API key (`wrenn login`, or WRENN_API_KEY)");
        }
    }

    fn message(&self) -> String {
        match self {
            // `{:#}` joins anyhow's context chain with ": ".
            CliError::Other(e) => format!("{e:#}"),
            other => other.to_string(),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Other(e.into())
        }
    }
}

/// `Result` with [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// Shorthand for a local failure with a message.
pub fn fail(message: impl std::fmt::Display) -> CliError {
    CliError::Other(anyhow::anyhow!("{message}"))
}
