//! `wrenn-agent`: parse configuration, initialise tracing, run the agent.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    // `WRENN_LOG_FORMAT=json`: one JSON object per line, for log pipelines.
    match std::env::var("WRENN_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        Ok("text") | Err(_) => logs.init(),
        Ok(other) => {
            eprintln!("WRENN_LOG_FORMAT={other:?} is neither text nor json; logging text");
            logs.init()
        }
    }
    let config = wrenn_agent::config::Config::parse();
    wrenn_agent::run(config).await
}
