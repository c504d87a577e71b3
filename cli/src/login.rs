//! `wrenn login`: checks an API key against the control plane, then saves both to the
//! config file (mode 0600).

use crate::cli::LoginArgs;
use crate::client::Client;
use crate::config::{self, ConfigFile, Credentials};
use crate::error::{CliError, Result};
use crate::terminal::{self, PromptError};
use crate::{output, usage};
use serde_json::json;
use std::io::Read;
use std::path::Path;

pub async fn run(config_path: &Path, args: LoginArgs, json: bool) -> Result<i32> {
    // The saved file is only read for its URL when none is given (so logging in again is
    // how an unsafe file gets replaced).
    let url = match args.url.filter(|u| !u.trim().is_empty()) {
        Some(url) => url,
        None => config::load(config_path)?
            .and_then(|saved| saved.url)
            .ok_or_else(|| usage("give the control plane's URL: wrenn login --url URL"))?,
    };
    let url = config::normalise_url(&url)?;
    let api_key = match args.api_key.filter(|k| !k.trim().is_empty()) {
        Some(key) => key.trim().to_string(),
        None => read_key().await?,
    };
    if api_key.is_empty() {
        return Err(usage("no API key given"));
    }
    let credentials = Credentials {
        url: url.clone(),
        api_key: api_key.clone(),
    };
    verify(&credentials).await?;
    config::save(
        config_path,
        &ConfigFile {
            url: Some(url.clone()),
            api_key: Some(api_key),
        },
    )?;
    if json {
        output::json_line(&json!({"url": url, "config": config_path}))?;
    } else {
        output::out(&format!(
            "Logged in to {url}; saved to {}\n",
            config_path.display()
        ))?;
    }
    Ok(0)
}

/// The key from stdin when it is not a terminal, else from a prompt without echo.
async fn read_key() -> Result<String> {
    tokio::task::spawn_blocking(|| {
        if terminal::stdin_is_terminal() {
            match terminal::read_secret("API key: ") {
                Ok(key) => Ok(key),
                Err(PromptError::Cancelled) => Err(usage("cancelled")),
                Err(PromptError::Io(e)) => Err(CliError::from(e)),
            }
        } else {
            let mut text = String::new();
            std::io::stdin()
                .take(64 * 1024)
                .read_to_string(&mut text)
                .map_err(CliError::from)?;
            Ok(text.lines().next().unwrap_or("").trim().to_string())
        }
    })
    .await
    .map_err(|e| crate::error::fail(format!("reading the API key: {e}")))?
}

/// One cheap authenticated request; a refused key is reported as such.
async fn verify(credentials: &Credentials) -> Result<()> {
    let client = Client::new(credentials)?;
    match client.get("/v1/capsules?limit=1").await {
        Ok(_) => Ok(()),
        Err(CliError::Api {
            status: 401 | 403,
            message,
            ..
        }) => Err(CliError::Config(format!(
            "{} refused the API key: {message}",
            credentials.url
        ))),
        Err(e) => Err(e),
    }
}
