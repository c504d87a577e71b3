//! `wrenn-agent`: parse configuration, initialise tracing, run the agent.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = wrenn_agent::config::Config::parse();
    wrenn_agent::run(config).await
}
