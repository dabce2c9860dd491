//! One configuration source for every `im` command. Each setting is listed once, in
//! [`keys::KEYS`]; its default is [`Settings::with_data_dir`]'s. A value comes from, first
//! to last: its `--flag`, its environment variable, the config file (`--config`,
//! `IM_CONFIG`, else `./im.toml` when there is one), the default. `im serve
//! --print-config` shows the result, secrets masked.

pub mod keys;

use crate::settings::Settings;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

pub use keys::KEYS;

/// How much of a value `--print-config` may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    No,
    /// Nothing of it.
    Whole,
    /// A URL whose password is hidden.
    UrlPassword,
}

/// One setting.
pub struct Key {
    /// The `im.toml` key; the flag is the same with dashes.
    pub name: &'static str,
    pub env: &'static str,
    pub help: &'static str,
    pub secret: Secret,
    /// The value as text (`None`: unset).
    pub get: fn(&Settings) -> Option<String>,
    /// Parses and stores a value, or says what is wrong with it.
    pub set: fn(&mut Settings, &str) -> Result<(), String>,
}

impl Key {
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    /// The value as `--print-config` shows it.
    pub fn shown(&self, settings: &Settings) -> Option<String> {
        let value = (self.get)(settings)?;
        Some(match self.secret {
            Secret::No => value,
            Secret::Whole => "********".to_owned(),
            Secret::UrlPassword => mask_url_password(&value),
        })
    }
}

/// `scheme://user:password@host…` → `scheme://user:********@host…`.
fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_owned() };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:********{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
        None => url.to_owned(),
    }
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Default,
    File,
    Environment,
    Flag,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::File => "config file",
            Origin::Environment => "environment",
            Origin::Flag => "flag",
        }
    }
}

/// A setting that could not be read, named as the operator wrote it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The resolved settings and where each value came from.
pub struct Resolved {
    pub settings: Settings,
    pub origins: BTreeMap<&'static str, Origin>,
    pub file: Option<PathBuf>,
}

/// What a command was given: its flags (a subset of the keys) and the config file's path.
#[derive(Debug, Default, Clone)]
pub struct Given {
    pub flags: BTreeMap<&'static str, String>,
    pub file: Option<PathBuf>,
}

impl Given {
    /// Resolves against the process environment.
    pub fn resolve(&self) -> Result<Resolved, ConfigError> {
        self.resolve_with(&|name| std::env::var(name).ok())
    }

    /// Resolves with `env` as the environment.
    pub fn resolve_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, ConfigError> {
        let file = match (&self.file, env("IM_CONFIG").filter(|p| !p.is_empty())) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(path)) => Some(PathBuf::from(path)),
            (None, None) => Some(PathBuf::from("im.toml")).filter(|p| p.is_file()),
        };
        let from_file = match &file {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        let mut origins = BTreeMap::new();
        let value_of = |key: &Key| -> Option<(String, Origin, String)> {
            if let Some(v) = self.flags.get(key.name) {
                return Some((v.clone(), Origin::Flag, format!("--{}", key.flag())));
            }
            if let Some(v) = env(key.env) {
                return Some((v, Origin::Environment, key.env.to_owned()));
            }
            let shown = file.as_deref().map_or_else(String::new, |p| p.display().to_string());
            from_file.get(key.name).map(|v| (v.clone(), Origin::File, format!("{} in {shown}", key.name)))
        };
        // The data dir first: the upload dirs' defaults hang off it.
        let mut settings = Settings::with_data_dir("./data");
        let ordered = KEYS.iter().filter(|k| k.name == "data_dir").chain(KEYS.iter().filter(|k| k.name != "data_dir"));
        for key in ordered {
            match value_of(key) {
                Some((value, origin, said)) => {
                    if key.name == "data_dir" {
                        settings = Settings::with_data_dir(value.trim());
                    }
                    (key.set)(&mut settings, &value).map_err(|e| ConfigError(format!("{said}: {e} (got {value:?})")))?;
                    origins.insert(key.name, origin);
                }
                None => {
                    origins.insert(key.name, Origin::Default);
                }
            }
        }
        if settings.files.s3.as_ref().is_some_and(|s3| s3.endpoint.is_empty()) {
            settings.files.s3 = None;
        }
        Ok(Resolved { settings, origins, file })
    }
}

/// The config file's keys and their values as text. Unknown keys are refused (a typo
/// must not silently leave a default in place).
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
    let table: toml::Table = text.parse().map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
    let mut values = BTreeMap::new();
    for (name, value) in table {
        if !KEYS.iter().any(|k| k.name == name) {
            return Err(ConfigError(format!("config file {}: unknown setting {name:?} (see im serve --help)", path.display())));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError(format!(
                    "config file {}: {name} must be a string or a number, not {}",
                    path.display(),
                    other.type_str()
                )));
            }
        };
        values.insert(name, text);
    }
    Ok(values)
}

impl Resolved {
    /// The effective settings as an `im.toml` would hold them, each with its origin;
    /// secrets masked.
    pub fn print(&self) -> String {
        let mut out = String::from("# im: the effective settings (flag > environment > config file > default); secrets masked\n");
        if let Some(file) = &self.file {
            out.push_str(&format!("# config file: {}\n", file.display()));
        }
        for key in KEYS {
            let origin = self.origins.get(key.name).copied().unwrap_or(Origin::Default).as_str();
            match key.shown(&self.settings) {
                Some(value) => out.push_str(&format!("{} = {}  # {}, {origin}\n", key.name, toml::Value::String(value), key.env)),
                None => out.push_str(&format!("# {} is unset  # {}, {origin}\n", key.name, key.env)),
            }
        }
        out
    }
}

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

#[cfg(test)]
mod tests;
