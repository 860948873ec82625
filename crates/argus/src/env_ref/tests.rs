//! The audit: every flag has an environment form, the names are sound, and
//! docs/environment.md is what `argus config env` prints. Nothing here reads or sets the
//! process environment.
use super::*;
use std::collections::{BTreeMap, BTreeSet};

fn all() -> Vec<FlagEnv> {
    flags()
}

#[test]
fn every_flag_has_an_environment_form() {
    let flags = all();
    let missing: Vec<String> = flags
        .iter()
        .filter(|f| f.form == EnvForm::Missing)
        .map(|f| format!("argus {} {}", f.command, f.flag))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} flags have no environment form (give them a configuration key or a clap \
         `env = \"ARGUS_...\"`):\n  {}",
        missing.len(),
        flags.len(),
        missing.join("\n  ")
    );
    // The walk sees the whole tree: the flags of nested commands and of flattened groups.
    for (command, flag) in [
        ("", "--config"),
        ("work", "--max-batch"),
        ("work", "-X"),
        ("drift watch", "--metrics-addr"),
        ("produce synthetic", "--brighten"),
        ("produce records", "--key"),
        ("drift compare", "--fail-on-drift"),
        ("drift profile", "--segment-column"),
    ] {
        assert!(
            flags.iter().any(|f| f.command == command && f.flag == flag),
            "{command} {flag} not walked"
        );
    }
}

#[test]
fn configuration_keys_exist_and_their_names_read_back() {
    for f in all() {
        let EnvForm::Config(key) = &f.form else {
            continue;
        };
        assert!(
            config::is_config_key(key),
            "argus {} {}: {key} is not a configuration key",
            f.command,
            f.flag
        );
        if key == config::KAFKA_OPTIONS_KEY {
            continue;
        }
        let name = config::env_name(key);
        assert_eq!(
            config::env_keys(&name).unwrap_or_else(|e| panic!("{e}")),
            std::slice::from_ref(key),
            "{name}"
        );
    }
}

/// Every flag name a command's `flags()` records is a flag of that command (or of the
/// commands above it): a typo there would pair no flag with its key.
#[test]
fn recorded_flags_are_real_flags() {
    let flags = all();
    let root = Cli::command();
    for leaf in leaves(&root, &[]) {
        for (flag, key) in config_keys(&leaf) {
            let known = (0..=leaf.len()).any(|n| {
                let command = leaf[..n].join(" ");
                flags.iter().any(|f| f.command == command && f.flag == flag)
            });
            assert!(
                known,
                "argus {}: {flag} (→ {key}) is no flag",
                leaf.join(" ")
            );
        }
    }
}

#[test]
fn per_run_variables_are_distinct_and_never_read_as_configuration() {
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in all() {
        if let EnvForm::Var(name) = &f.form {
            by_name.entry(name.clone()).or_default().insert(f.flag);
        }
    }
    assert!(by_name.len() > 20, "{by_name:?}");
    for (name, flags) in &by_name {
        assert!(name.starts_with("ARGUS_"), "{name}");
        // `__` would be read as ARGUS_<TABLE>__<KEY> and refused as an unknown key.
        assert!(!name.contains("__"), "{name}");
        assert_eq!(
            config::env_keys(name).unwrap_or_else(|e| panic!("{e}")),
            Vec::<String>::new(),
            "{name} also sets configuration"
        );
        // One variable, one flag (a flag group shared by commands shares its names).
        assert_eq!(flags.len(), 1, "{name} names {flags:?}");
    }
}

/// `ARGUS_X=false` turns a switch off: every switch with a variable takes the boolish
/// words (clap's default bool parser refuses `no`, `off`).
#[test]
fn switches_with_a_variable_take_false() {
    fn check(cmd: &clap::Command, path: &str) {
        for arg in cmd.get_arguments() {
            if arg.get_env().is_none()
                || !matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
            {
                continue;
            }
            let words: Vec<String> = arg
                .get_value_parser()
                .possible_values()
                .into_iter()
                .flatten()
                .flat_map(|v| {
                    v.get_name_and_aliases()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            for w in ["true", "false", "yes", "no", "on", "off", "1", "0"] {
                assert!(
                    words.iter().any(|x| x == w),
                    "{path} --{:?}: {w} not accepted ({words:?})",
                    arg.get_long()
                );
            }
        }
        for sub in cmd.get_subcommands() {
            check(sub, &format!("{path} {}", sub.get_name()));
        }
    }
    check(&Cli::command(), "argus");
}

#[test]
fn roles_sharing_a_pod_have_their_own_metrics_address() {
    let flags = all();
    let form = |command: &str| {
        flags
            .iter()
            .find(|f| f.command == command && f.flag == "--metrics-addr")
            .map(|f| names(&f.form))
            .unwrap_or_default()
    };
    let work = form("work");
    let watch = form("drift watch");
    assert_eq!(work, ["ARGUS_WORKER__METRICS_ADDR", "ARGUS_METRICS_ADDR"]);
    assert_eq!(watch, ["ARGUS_DRIFT__METRICS_ADDR"]);
}

#[test]
fn the_kafka_map_is_the_options_table() {
    let x: Vec<FlagEnv> = all().into_iter().filter(|f| f.flag == "-X").collect();
    assert!(x.len() >= 5, "{x:?}");
    for f in &x {
        assert_eq!(
            f.form,
            EnvForm::Config(config::KAFKA_OPTIONS_KEY.into()),
            "{f:?}"
        );
    }
}

#[test]
fn the_docs_reference_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/environment.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        text == markdown(),
        "{} is stale: run `cargo run -p argus -- config env > docs/environment.md`",
        path.display()
    );
}

#[test]
fn the_reference_lists_every_listed_flag_once_per_command() {
    let text = markdown();
    assert!(text.contains(
        "| `--max-batch` | `ARGUS_WORKER__MAX_BATCH`, `ARGUS_MAX_BATCH` | `worker.max_batch` |"
    ));
    assert!(text.contains("| `--fail-on-drift` | `ARGUS_DRIFT_COMPARE_FAIL_ON_DRIFT` | — |"));
    assert!(text.contains("| `-X` | `ARGUS_KAFKA__OPTIONS__<PROPERTY>` | `kafka.options.*` |"));
    assert!(
        !text.contains("--inject-delay"),
        "hidden flags are not listed"
    );
    assert!(!text.contains("**none**"));
}
