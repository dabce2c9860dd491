//! Resolving the settings: flag, then environment, then config file, then default.

use super::keys::{KEYS, Key};
use crate::settings::Settings;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
