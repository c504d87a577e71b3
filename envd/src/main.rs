//! The envd binary: parse flags, set up logging, run.
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = wrenn_envd::config::Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ENVD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Two worker threads: envd is small and shares the capsule's CPUs with the user's work.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(wrenn_envd::run(config))
}
