//! The HTTP API, one module per section of the contract.

pub mod accounts;
