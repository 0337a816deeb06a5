//! The `--config FILE` merge: the file's keys become extra arguments for the flags that the
//! command line and the environment left unset (see [`super`] for the precedence).

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory};

use super::{FILE_KEY_SUBCOMMANDS, LIST_KEYS};
use crate::cli::{Cli, CliError};

pub(crate) fn read_config_file(path: &Path) -> Result<toml::Table, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::File(format!("--config {}: {e}", path.display())))?;
    text.parse::<toml::Table>()
        .map_err(|e| CliError::File(format!("{}: {e}", path.display())))
}

/// Turns the file's entries into extra arguments: list entries to go right after `run` (before
/// the command line's, so those win), single values to go at the end, only for the flags the
/// command line and environment did not set.
pub(crate) fn file_arguments(
    path: &Path,
    table: &toml::Table,
    subcommand: &[&str],
    matches: &ArgMatches,
) -> Result<(Vec<OsString>, Vec<OsString>), CliError> {
    let bad =
        |key: &str, what: String| CliError::File(format!("{}: {key}: {what}", path.display()));
    let command = Cli::command();
    let sub_command = |names: &[&str]| {
        names.iter().fold(&command, |c, name| {
            c.find_subcommand(name)
                .expect("a subcommand that takes --config")
        })
    };
    let this = sub_command(subcommand);
    let known_elsewhere = |key: &str| {
        FILE_KEY_SUBCOMMANDS.iter().any(|&other| {
            sub_command(&[other])
                .get_arguments()
                .any(|a| a.get_long() == Some(key))
        })
    };
    let file_key_here = FILE_KEY_SUBCOMMANDS.contains(&subcommand[0]);
    let (mut front, mut back) = (Vec::new(), Vec::new());
    for (raw_key, value) in table {
        let key = raw_key.replace('_', "-");
        if key == "config" || key == "print-config" {
            return Err(bad(raw_key, "not allowed in a config file".into()));
        }
        // Global flags (log-format) are defined on the top command; clap propagates their
        // values to the subcommand's matches.
        let found = command
            .get_arguments()
            .chain(this.get_arguments())
            .find(|a| a.get_long() == Some(key.as_str()))
            .filter(|a| file_key_here || a.is_global_set() || known_elsewhere(&key));
        let arg =
            match found {
                Some(arg) => arg,
                None if known_elsewhere(&key) => continue,
                None => return Err(bad(
                    raw_key,
                    "unknown key (keys are the long flags of `run`, `topics` and `sink`, e.g. input-topic)"
                        .into(),
                )),
            };
        let id = arg.get_id().as_str();
        let source = matches.value_source(id);
        let set_above = matches!(
            source,
            Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable)
        );
        if LIST_KEYS.contains(&key.as_str()) {
            let entries = list_entries(value).map_err(|e| bad(raw_key, e))?;
            front.extend(
                entries
                    .iter()
                    .map(|e| OsString::from(format!("--{key}={e}"))),
            );
            // Values from the environment are only used by clap when the flag is absent from
            // the command line, which it no longer is: carry them over explicitly.
            if source == Some(ValueSource::EnvVariable) {
                front.extend(environment_entries(matches, id, &key));
            }
        } else if !set_above {
            back.extend(
                single_argument(arg.get_action(), &key, value).map_err(|e| bad(raw_key, e))?,
            );
        }
    }
    Ok((front, back))
}

/// The environment's entries of list flag `key` (argument `id`), as flags.
fn environment_entries<'a>(
    matches: &'a ArgMatches,
    id: &str,
    key: &'a str,
) -> impl Iterator<Item = OsString> + 'a {
    matches.get_raw(id).into_iter().flatten().map(move |raw| {
        let mut a = OsString::from(format!("--{key}="));
        a.push(raw);
        a
    })
}

/// The flag for a single value: `--key=value`, `--key` for a `true` switch, nothing for a
/// `false` one.
fn single_argument(
    action: &ArgAction,
    key: &str,
    value: &toml::Value,
) -> Result<Option<OsString>, String> {
    Ok(match (action, value) {
        (ArgAction::SetTrue, toml::Value::Boolean(true)) => Some(format!("--{key}").into()),
        (ArgAction::SetTrue, toml::Value::Boolean(false)) => None,
        (ArgAction::SetTrue, _) => return Err("expected true or false".into()),
        (_, v) => Some(format!("--{key}={}", scalar(v)?).into()),
    })
}

/// A single value as its flag text.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string or number, got {}",
            other.type_str()
        )),
    }
}

/// A list flag's entries: an array of "key=value" strings, or a table (nested tables flatten
/// with dots, so `[property]` with `security.protocol = "ssl"` means `security.protocol=ssl`).
fn list_entries(value: &toml::Value) -> Result<Vec<String>, String> {
    fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<String>) -> Result<(), String> {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => flatten(&key, t, out)?,
                v => out.push(format!("{key}={}", scalar(v)?)),
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    match value {
        toml::Value::Array(items) => {
            for item in items {
                match item {
                    toml::Value::String(s) => out.push(s.clone()),
                    other => {
                        return Err(format!(
                            "expected \"key=value\" strings, got {}",
                            other.type_str()
                        ))
                    }
                }
            }
        }
        toml::Value::Table(t) => flatten("", t, &mut out)?,
        other => {
            return Err(format!(
                "expected a table or an array of \"key=value\" strings, got {}",
                other.type_str()
            ))
        }
    }
    Ok(out)
}
