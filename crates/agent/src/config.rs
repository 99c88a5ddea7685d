//! The agent's configuration file (TOML).
//!
//! ```toml
//! host = "front-desk-1"            # default: the machine's host name
//! watch = ["/home", "/srv/share"]
//! buffer = "/var/lib/rxvault-agent/reports.jsonl"
//! buffer_max_bytes = 1048576
//! policy = "kill"                  # or "resume", or "stop" (leave it stopped)
//! canaries = true
//! canary_depth = 1                 # canaries in each watched folder and its subfolders to this depth
//!
//! [thresholds]
//! threshold = 12
//! window_secs = 300
//!
//! [[allow]]                        # exempt by executable path AND SHA-256
//! path = "/usr/bin/age"
//! sha256 = "…64 hex digits…"
//! ```

use crate::score::Thresholds;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What to do with a stopped process once it is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Kill it (SIGKILL to every process stopped).
    #[default]
    Kill,
    /// Resume it (SIGCONT): detection and report only.
    Resume,
    /// Leave it stopped for a person to decide (`kill -CONT` or `kill -9`).
    Stop,
}

/// One allow-listed executable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    /// Its absolute path.
    pub path: PathBuf,
    /// The SHA-256 of its content, hex.
    pub sha256: String,
}

/// The configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The host's name in reports.
    #[serde(default)]
    pub host: Option<String>,
    /// Folders watched (recursively).
    pub watch: Vec<PathBuf>,
    /// The report buffer file.
    pub buffer: PathBuf,
    /// The buffer's bound.
    #[serde(default = "default_buffer_max")]
    pub buffer_max_bytes: u64,
    /// Kill or resume after the report.
    #[serde(default)]
    pub policy: Policy,
    /// Place canaries (default true; false measures the other signals
    /// alone).
    #[serde(default = "yes")]
    pub canaries: bool,
    /// Canaries go in each watched folder and its subfolders to this depth
    /// (0: the watched folders only).
    #[serde(default = "default_canary_depth")]
    pub canary_depth: usize,
    /// Scoring.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Exempt executables.
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
}

fn default_buffer_max() -> u64 {
    1 << 20
}

fn yes() -> bool {
    true
}

fn default_canary_depth() -> usize {
    1
}

/// Errors of the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// It is not valid TOML for the agent.
    #[error("config {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: Box<toml::de::Error>,
    },
    /// A value is wrong.
    #[error("config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            source: Box::new(e),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: PathBuf::new(),
            message,
        };
        if cfg.watch.is_empty() {
            return Err(invalid("`watch` lists no folder".into()));
        }
        for w in &cfg.watch {
            if !w.is_absolute() {
                return Err(invalid(format!(
                    "watched folder {} is not absolute",
                    w.display()
                )));
            }
        }
        for a in &cfg.allow {
            if !a.path.is_absolute() {
                return Err(invalid(format!(
                    "allow-listed {} is not an absolute path",
                    a.path.display()
                )));
            }
            if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "allow-listed {}: sha256 must be 64 hex digits",
                    a.path.display()
                )));
            }
        }
        if cfg.thresholds.threshold < 2 || cfg.thresholds.window_secs == 0 {
            return Err(invalid(
                "thresholds: threshold ≥ 2 and window_secs ≥ 1".into(),
            ));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n")
            .replace("…64 hex digits…", &"ab".repeat(32));
        let cfg = Config::parse(&doc).unwrap();
        assert_eq!(cfg.watch.len(), 2);
        assert_eq!(cfg.policy, Policy::Kill);
        assert_eq!(cfg.thresholds.threshold, 12);
        assert_eq!(cfg.allow[0].path, PathBuf::from("/usr/bin/age"));
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let base = "watch = [\"/d\"]\nbuffer = \"/b\"\n";
        assert!(Config::parse(base).is_ok());
        let e = Config::parse("watch = []\nbuffer = \"/b\"").unwrap_err();
        assert!(e.to_string().contains("no folder"), "{e}");
        let e = Config::parse("watch = [\"rel\"]\nbuffer = \"/b\"").unwrap_err();
        assert!(e.to_string().contains("not absolute"), "{e}");
        let e = Config::parse(&format!(
            "{base}[[allow]]\npath = \"/usr/bin/age\"\nsha256 = \"xyz\""
        ))
        .unwrap_err();
        assert!(e.to_string().contains("64 hex"), "{e}");
        let e = Config::parse(&format!("{base}nmae = 1")).unwrap_err();
        assert!(e.to_string().contains("nmae"), "{e}");
    }
}
