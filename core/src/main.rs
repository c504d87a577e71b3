//! `wrenn-cp`: parse configuration, initialise tracing, run the control plane with the
//! first-party extensions this binary ships (E2B compatibility, on when `WRENN_E2B_LISTEN` is
//! set).

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let builder = cpserver::Builder::new().command_line().logging();
    #[cfg(feature = "e2b")]
    let builder = builder.extension(wrenn_ext_e2b::E2b::from_env());
    runtime.block_on(cpserver::run(builder))?;
    Ok(())
}
