//! The Wrenn control plane as a library (filled by the foundation issue).

pub mod audit;
pub mod db;
pub mod events;
pub mod hosts;
pub mod http;
