//! One configuration source for every `im` command. Each setting is listed once, in
//! [`keys::KEYS`]; its default is [`Settings::with_data_dir`]'s. A value comes from, first
//! to last: its `--flag`, its environment variable, the config file (`--config`,
//! `IM_CONFIG`, else `./im.toml` when there is one), the default. `im serve
//! --print-config` shows the result, secrets masked.

pub mod cli;
pub mod keys;
mod resolve;

pub use cli::{AllFlags, ConfigArgs, Flags, RebuildFlags, ReplayFlags, StoreFlags};
pub use keys::{KEYS, Key, Secret};
pub use resolve::{ConfigError, Given, Origin, Resolved};

#[cfg(test)]
mod tests;
