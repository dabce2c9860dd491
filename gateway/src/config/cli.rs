//! The settings as clap flags: every key, or a command's subset.

use super::keys::{KEYS, Key, Secret};
use super::resolve::{ConfigError, Given, Resolved};
use crate::settings::Settings;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::marker::PhantomData;
use std::path::PathBuf;

/// Which keys a command takes as flags.
pub trait Flags {
    /// `None`: all of them.
    const KEYS: Option<&'static [&'static str]>;
}

/// Every setting as a flag (`im serve`).
#[derive(Debug, Clone, Copy)]
pub struct AllFlags;

impl Flags for AllFlags {
    const KEYS: Option<&'static [&'static str]> = None;
}

/// Where the log is (the operator tools).
#[derive(Debug, Clone, Copy)]
pub struct StoreFlags;

impl Flags for StoreFlags {
    const KEYS: Option<&'static [&'static str]> = Some(&["data_dir", "database_url"]);
}

/// Where the log and read models are, and how much a rebuild replays at once (`im rebuild`).
#[derive(Debug, Clone, Copy)]
pub struct RebuildFlags;

impl Flags for RebuildFlags {
    const KEYS: Option<&'static [&'static str]> = Some(&["data_dir", "database_url", "rebuild_range"]);
}

/// Where the log is and the Kafka it is published to (`im replay`).
#[derive(Debug, Clone, Copy)]
pub struct ReplayFlags;

impl Flags for ReplayFlags {
    const KEYS: Option<&'static [&'static str]> = Some(&["data_dir", "database_url", "kafka_brokers", "events_topic"]);
}

/// The settings flags of a command, for clap: `#[command(flatten)] config: ConfigArgs<F>`.
#[derive(Debug, Clone)]
pub struct ConfigArgs<F> {
    pub given: Given,
    flags: PhantomData<F>,
}

impl<F: Flags> ConfigArgs<F> {
    fn keys() -> impl Iterator<Item = &'static Key> {
        KEYS.iter().filter(|k| F::KEYS.is_none_or(|only| only.contains(&k.name)))
    }

    /// Resolves against the process environment.
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        self.given.resolve()
    }

    pub fn settings(&self) -> Result<Settings, ConfigError> {
        Ok(self.resolve()?.settings)
    }
}

impl<F: Flags> clap::FromArgMatches for ConfigArgs<F> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Given { file: matches.get_one::<PathBuf>("config").cloned(), ..Given::default() };
        for key in Self::keys() {
            if let Some(v) = matches.get_one::<String>(key.name) {
                given.flags.insert(key.name, v.clone());
            }
        }
        Ok(Self { given, flags: PhantomData })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<F: Flags> clap::Args for ConfigArgs<F> {
    fn augment_args(cmd: Command) -> Command {
        let defaults = Settings::with_data_dir("./data");
        let mut cmd = cmd.arg(
            Arg::new("config")
                .long("config")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .action(ArgAction::Set)
                .help("Settings file (TOML, keys as the flags with underscores) [env: IM_CONFIG] [default: ./im.toml when present]"),
        );
        for key in Self::keys() {
            // Secrets have no default to show; a help that explains its default keeps it.
            let default = match key.secret {
                Secret::No if !key.help.contains("(default") => {
                    (key.get)(&defaults).map(|d| format!(" [default: {d}]")).unwrap_or_default()
                }
                _ => String::new(),
            };
            cmd = cmd.arg(
                Arg::new(key.name)
                    .long(key.flag())
                    .value_name("VALUE")
                    .action(ArgAction::Set)
                    .help(format!("{} [env: {}]{default}", key.help, key.env)),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
