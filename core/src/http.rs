//! HTTP routers, one per resource.

pub mod audit;
pub mod events;
pub mod hosts;
