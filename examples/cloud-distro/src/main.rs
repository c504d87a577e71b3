//! A private cloud distribution: the open-source control plane plus one extension, without a
//! fork. Configuration comes from the environment exactly as for `wrenn-cp`.

use cloud_distro::CloudExtension;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cpserver::run(
        cpserver::Builder::new()
            .version("cloud-1.0.0")
            .extension(CloudExtension::from_env()),
    )
    .await?;
    Ok(())
}
