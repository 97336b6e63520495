//! The command line: one `--<setting>` flag per entry of [`crate::config::SETTINGS`], plus
//! `--config <file>` and `--print-config`. Layers defaults, file, environment and flags.

use std::ffi::OsString;

use clap::{Arg, ArgAction};

use crate::config::{Config, ConfigError, Origin, SETTINGS, Values};

pub fn command() -> clap::Command {
    let mut cmd = clap::Command::new("reredis")
        .version(env!("CARGO_PKG_VERSION"))
        .about("A Redis-compatible, clustered key-value server")
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("FILE")
                .help("Configuration file (TOML or YAML)"),
        )
        .arg(
            Arg::new("print-config")
                .long("print-config")
                .action(ArgAction::SetTrue)
                .help(
                    "Print the effective configuration, with where each value came from, and exit",
                ),
        );
    for s in SETTINGS {
        cmd = cmd.arg(
            Arg::new(s.name)
                .long(s.flag())
                .value_name("VALUE")
                .allow_hyphen_values(true)
                .help(format!(
                    "{} [default: {}] [env: {}]",
                    s.help,
                    s.default,
                    s.env_var()
                )),
        );
    }
    cmd
}

pub struct Loaded {
    pub config: Config,
    pub print_config: bool,
}

/// Builds the configuration from command-line `args` (program name first) and `env`.
pub fn load(
    args: impl IntoIterator<Item = OsString>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, LoadError> {
    let m = command()
        .try_get_matches_from(args)
        .map_err(LoadError::Cli)?;
    let mut values = Values::default();
    let file = m.get_one::<String>("config").cloned();
    if let Some(path) = &file {
        values.load_file(path)?;
    }
    values.load_env(env)?;
    for s in SETTINGS {
        if let Some(v) = m.get_one::<String>(s.name) {
            values.set(s.name, v, Origin::Flag(s.flag()))?;
        }
    }
    let mut config = Config::from_values(values);
    config.config_file = file;
    Ok(Loaded {
        config,
        print_config: m.get_flag("print-config"),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Cli(clap::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        std::iter::once("reredis")
            .chain(a.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "port = 7000\nhttp-port = 7100\nmaxclients = 5\n").unwrap();
        let env = vec![
            ("REREDIS_HTTP_PORT".to_string(), "7200".to_string()),
            ("REREDIS_PORT".to_string(), "7300".to_string()),
        ];
        let l = load(
            args(&["--config", f.to_str().unwrap(), "--port", "7400"]),
            env,
        )
        .unwrap();
        assert_eq!(l.config.port, 7400);
        assert_eq!(l.config.http_port, 7200);
        assert_eq!(l.config.maxclients, 5);
        assert!(matches!(
            l.config.values.origin("port"),
            Some(Origin::Flag(_))
        ));
    }

    #[test]
    fn bad_flag_value_names_setting_and_flag() {
        let err = match load(args(&["--maxmemory", "lots"]), Vec::new()) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted a bad value"),
        };
        assert!(
            err.contains("'maxmemory'") && err.contains("--maxmemory"),
            "{err}"
        );
    }

    #[test]
    fn negative_values_are_values() {
        let l = load(args(&["--slowlog-log-slower-than", "-1"]), Vec::new()).unwrap();
        assert_eq!(l.config.slowlog_log_slower_than, -1);
    }
}
