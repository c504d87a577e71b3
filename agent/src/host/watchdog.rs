//! Watchdog: notices capsules whose sandbox ended on its own (killed by the host for its
//! memory, crashed) within one interval, through [`Host::check`].

use std::sync::Arc;
use std::time::Duration;

use super::Host;
use crate::capsules::State;

pub async fn run(host: Arc<Host>, every: Duration) {
    let mut tick = super::ticks(every);
    while super::next_round(&host, &mut tick).await {
        for capsule in host.capsules.all() {
            if capsule.state() == State::Running {
                host.check(&capsule).await;
            }
        }
    }
}
