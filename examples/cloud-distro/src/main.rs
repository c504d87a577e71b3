//! A private cloud distribution: the open-source control plane plus one extension, without a
//! fork. Configuration comes from the command line and environment exactly as for `wrenn-cp`.

use cloud_distro::Cloud;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let every = std::env::var("CLOUD_METER_INTERVAL_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let cloud = Cloud { meter_every: Duration::from_secs(every) };
    cpserver::run(cpserver::Builder::new().command_line().logging().version("cloud-1.0.0").extension(cloud))
        .await?;
    Ok(())
}
