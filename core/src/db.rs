//! Data access: one module per aggregate, functions taking an executor.

pub mod audit;
pub mod hosts;
