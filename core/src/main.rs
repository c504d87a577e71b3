//! `wrenn-cp`: parse configuration, initialise tracing, run the control plane.

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(cpserver::run(
        cpserver::Builder::new().command_line().logging(),
    ))?;
    Ok(())
}
