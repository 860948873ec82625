//! The layers are fed from values passed in: no test touches the process environment.
use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .unwrap_or_else(|e| panic!("{e}"));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    f
}

fn load_ok(sources: Sources) -> Loaded {
    load(sources).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn defaults_alone() {
    let l = load_ok(Sources::default());
    assert_eq!(l.config, ArgusConfig::default());
    assert_eq!(l.config.worker.max_batch, 8);
    assert_eq!(
        l.config.worker.topics.iter().collect::<Vec<_>>(),
        ["predictions", "alerts", "dlq", "predictions.shadow"]
    );
}

#[test]
fn precedence_default_file_env_flag() {
    let f = file(
        "[worker]\nmax_batch = 4\ntop_k = 3\ngroup = \"g-file\"\ndrain_timeout = \"5s\"\n\
         [kafka]\nbrokers = \"file:9092\"\n",
    );
    let mut flags = Flags::default();
    flags.set("worker.max_batch", "--max-batch", Some(&16usize));
    flags.kafka_option("acks", "all");
    let l = load_ok(Sources {
        file: Some(f.path().to_path_buf()),
        env: env(&[
            ("ARGUS_WORKER__MAX_BATCH", "12"),
            ("ARGUS_WORKER__TOP_K", "7"),
            ("ARGUS_BROKERS", "env:9092"),
            ("ARGUS_KAFKA__OPTIONS__ACKS", "1"),
            ("PATH", "/bin"),
        ]),
        flags,
    });
    let w = &l.config.worker;
    assert_eq!(w.max_batch, 16, "flag beats env");
    assert_eq!(w.top_k, 7, "env beats file");
    assert_eq!(w.group, "g-file", "file beats default");
    assert_eq!(w.drain_timeout, Duration::from_secs(5));
    assert_eq!(w.decode_threads, 2, "default");
    assert_eq!(l.config.kafka.brokers, "env:9092");
    assert_eq!(l.config.demo.brokers.as_deref(), Some("env:9092"));
    assert_eq!(l.config.kafka.options["acks"], "all", "-X applied last");
    assert_eq!(l.source(&["worker", "max_batch"]), "flag --max-batch");
    assert_eq!(l.source(&["worker", "top_k"]), "env ARGUS_WORKER__TOP_K");
    assert!(l.source(&["worker", "group"]).starts_with("file "));
    assert_eq!(l.source(&["worker", "decode_threads"]), "default");
}

#[test]
fn structured_env_beats_legacy_names_and_lists_split() {
    let l = load_ok(Sources {
        env: env(&[
            ("ARGUS_MAX_BATCH", "2"),
            ("ARGUS_WORKER__MAX_BATCH", "3"),
            ("ARGUS_INPUT", "a, b"),
            ("ARGUS_ALERTS", "person>=0.7,intruder:person>=0.9"),
            ("ARGUS_DRAIN_TIMEOUT", "3"),
            ("ARGUS_EXACTLY_ONCE", "true"),
            ("ARGUS_KAFKA__OPTIONS__SASL_MECHANISM", "PLAIN"),
        ]),
        ..Default::default()
    });
    let w = &l.config.worker;
    assert_eq!(w.max_batch, 3);
    assert_eq!(w.inputs, ["a", "b"]);
    assert_eq!(l.config.score.input, "a, b");
    assert_eq!(w.alerts.len(), 2);
    assert_eq!(w.alerts[1].name, "intruder");
    assert_eq!(w.drain_timeout, Duration::from_secs(3), "bare seconds");
    assert!(w.exactly_once);
    assert_eq!(l.config.kafka.options["sasl.mechanism"], "PLAIN");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let f = file("[worker]\nmax_bach = 4\n");
    let e = load(Sources {
        file: Some(f.path().to_path_buf()),
        ..Default::default()
    })
    .err()
    .unwrap_or_default();
    assert!(e.contains("max_bach"), "{e}");
    let e = load(Sources {
        env: env(&[("ARGUS_WORKR__MAX_BATCH", "4")]),
        ..Default::default()
    })
    .err()
    .unwrap_or_default();
    assert!(
        e.contains("workr") && e.contains("ARGUS_WORKR__MAX_BATCH"),
        "{e}"
    );
}

#[test]
fn bad_duration_is_named() {
    let f = file("[worker]\ndrain_timeout = \"20 parsecs\"\n");
    let e = load(Sources {
        file: Some(f.path().to_path_buf()),
        ..Default::default()
    })
    .err()
    .unwrap_or_default();
    assert!(
        e.contains("drain_timeout") && e.contains("20 parsecs"),
        "{e}"
    );
}

#[test]
fn a_replication_factor_of_zero_is_refused_by_name() {
    let e = load(Sources {
        env: env(&[("ARGUS_KAFKA__REPLICATION_FACTOR", "0")]),
        ..Default::default()
    })
    .err()
    .unwrap_or_default();
    assert!(
        e.contains("replication_factor") && e.contains("replication factor 0 is invalid"),
        "{e}"
    );
    let f = file("[kafka]\nreplication_factor = 3\n");
    let fixed = load(Sources {
        file: Some(f.path().to_path_buf()),
        ..Default::default()
    })
    .map(|c| c.config.kafka.settings().replication_factor);
    assert_eq!(fixed, Ok(Some(3)));
}

#[test]
fn the_pixel_bound_is_checked_at_load() {
    let e = load(Sources {
        env: env(&[("ARGUS_WORKER__MAX_DECODED_PIXELS", "0")]),
        ..Default::default()
    })
    .err()
    .unwrap_or_default();
    assert!(e.contains("max_decoded_pixels 0 is out of range"), "{e}");
    let f = file("[worker]\nmax_decoded_pixels = 67108864\n");
    let loaded = load(Sources {
        file: Some(f.path().to_path_buf()),
        ..Default::default()
    })
    .map(|c| c.config.worker.max_decoded_pixels);
    assert_eq!(loaded, Ok(67_108_864));
}

#[test]
fn cross_field_checks_at_load() {
    let e = load(Sources {
        env: env(&[("ARGUS_PRODUCER__SYNTHETIC__CAMERAS", "0")]),
        ..Default::default()
    })
    .err()
    .unwrap_or_default();
    assert!(e.contains("--cameras"), "{e}");
}

#[test]
fn render_shows_sources_and_redacts_secrets() {
    let mut flags = Flags::default();
    flags.kafka_option("sasl.password", "hunter2");
    flags.kafka_option("sasl.username", "alice");
    flags.set("worker.max_batch", "--max-batch", Some(&4usize));
    let l = load_ok(Sources {
        env: env(&[("ARGUS_KAFKA__OPTIONS__SSL_KEY_PASSWORD", "s3cret")]),
        flags,
        ..Default::default()
    });
    let text = l.render(None).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !text.contains("hunter2") && !text.contains("s3cret"),
        "{text}"
    );
    assert!(
        text.contains("\"sasl.password\" = \"<redacted>\"  # flag -X"),
        "{text}"
    );
    assert!(
        text.contains("\"sasl.username\" = \"alice\"  # flag -X"),
        "{text}"
    );
    assert!(text.contains("max_batch = 4  # flag --max-batch"), "{text}");
    assert!(text.contains("decode_threads = 2  # default"), "{text}");
    assert!(text.contains("[worker.topics]"), "{text}");
    // The printed configuration loads back to the same values (secrets aside).
    let worker = l.render(Some("worker")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!worker.contains("[kafka]"));
    let back = file(&worker);
    let again = load_ok(Sources {
        file: Some(back.path().to_path_buf()),
        ..Default::default()
    });
    assert_eq!(again.config.worker, l.config.worker);
}

#[test]
fn example_file_loads_and_shows_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../argus.example.toml");
    let l = load_ok(Sources {
        file: Some(path.clone()),
        ..Default::default()
    });
    // Every value the example sets is the default, so the example is the defaults.
    assert_eq!(l.config, ArgusConfig::default(), "{}", path.display());
    // And it sets every key (optional ones commented out): each default key appears.
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let doc = toml::Value::try_from(ArgusConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    for role in ROLES {
        let Some(toml::Value::Table(t)) = doc.get(*role) else {
            continue;
        };
        for key in t.keys() {
            assert!(
                text.contains(&format!("\n{key} =")) || text.contains(&format!("[{role}.{key}]")),
                "argus.example.toml lacks {role}.{key}"
            );
        }
    }
}

#[test]
fn the_sasl_password_from_the_environment_reaches_librdkafka_and_is_redacted() {
    let l = load_ok(Sources {
        env: env(&[
            ("ARGUS_KAFKA__OPTIONS__SASL_PASSWORD", "hunter2"),
            ("ARGUS_KAFKA__OPTIONS__SASL_USERNAME", "alice"),
            ("ARGUS_KAFKA__OPTIONS__SECURITY_PROTOCOL", "sasl_ssl"),
        ]),
        ..Default::default()
    });
    let options = &l.config.kafka.options;
    assert_eq!(options["sasl.password"], "hunter2");
    assert_eq!(options["security.protocol"], "sasl_ssl");
    // The clients are built from these settings: the property is passed through.
    let settings = l.config.kafka.settings();
    assert_eq!(
        settings.options.get("sasl.password").map(String::as_str),
        Some("hunter2")
    );
    let text = l.render(Some("kafka")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains(
            "\"sasl.password\" = \"<redacted>\"  # env ARGUS_KAFKA__OPTIONS__SASL_PASSWORD"
        ),
        "{text}"
    );
    assert!(text.contains("\"sasl.username\" = \"alice\""), "{text}");
}

#[test]
fn a_double_underscore_in_an_option_name_is_an_underscore() {
    let seg = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(option_name(&seg(&["sasl_password"])), "sasl.password");
    assert_eq!(option_name(&seg(&["log", "level"])), "log_level");
    assert_eq!(
        option_name(&seg(&["ssl.certificate.verify", "cb"])),
        "ssl.certificate.verify_cb"
    );
    for p in [
        "sasl.password",
        "log_level",
        "enabled_events",
        "ssl.ca.location",
    ] {
        let name = option_env_name(p);
        assert_eq!(
            env_keys(&name).unwrap_or_else(|e| panic!("{e}")),
            [format!("kafka.options.{p}")],
            "{name}"
        );
    }
    let l = load_ok(Sources {
        env: env(&[("ARGUS_KAFKA__OPTIONS__LOG__LEVEL", "7")]),
        ..Default::default()
    });
    assert_eq!(l.config.kafka.options["log_level"], "7");
}

#[test]
fn the_shared_metrics_name_sets_the_worker_only() {
    let l = load_ok(Sources {
        env: env(&[("ARGUS_METRICS_ADDR", "0.0.0.0:9200")]),
        ..Default::default()
    });
    assert_eq!(l.config.worker.metrics_addr.port(), 9200);
    assert_eq!(
        l.config.drift.metrics_addr,
        DriftSettings::default().metrics_addr,
        "the sidecar in the same pod keeps its own address"
    );
    let l = load_ok(Sources {
        env: env(&[
            ("ARGUS_METRICS_ADDR", "0.0.0.0:9200"),
            ("ARGUS_DRIFT__METRICS_ADDR", "0.0.0.0:9201"),
        ]),
        ..Default::default()
    });
    assert_eq!(l.config.worker.metrics_addr.port(), 9200);
    assert_eq!(l.config.drift.metrics_addr.port(), 9201);
}

#[test]
fn switches_in_the_environment_take_false() {
    for (word, on) in [
        ("false", false),
        ("off", false),
        ("0", false),
        ("yes", true),
    ] {
        let l = load_ok(Sources {
            env: env(&[
                ("ARGUS_WORKER__EXACTLY_ONCE", word),
                ("ARGUS_SCORE__NO_PUBLISH", word),
            ]),
            ..Default::default()
        });
        assert_eq!(l.config.worker.exactly_once, on, "{word}");
        assert_eq!(l.config.score.no_publish, on, "{word}");
    }
}

#[test]
fn a_narrowed_name_is_reported_to_the_role_it_no_longer_sets() {
    let e = env(&[("ARGUS_METRICS_ADDR", "0.0.0.0:9200")]);
    assert_eq!(
        narrowed_env(&e, "drift.metrics_addr"),
        [("ARGUS_METRICS_ADDR", "ARGUS_DRIFT__METRICS_ADDR")]
    );
    assert!(narrowed_env(&e, "worker.metrics_addr").is_empty());
    assert!(narrowed_env(&env(&[("PATH", "/bin")]), "drift.metrics_addr").is_empty());
    // Every narrowed name is still an older name, for another key.
    for (old, key, new) in NARROWED_ENV {
        assert!(!legacy_names(key).contains(old), "{old} still sets {key}");
        assert!(LEGACY_ENV.iter().any(|(n, _)| n == old), "{old}");
        assert_eq!(
            env_keys(new).unwrap_or_else(|e| panic!("{e}")),
            [key.to_string()]
        );
    }
}

#[test]
fn zones_load_from_the_file_and_bad_ones_are_named() {
    let f = file(
        "[worker]\nsnapshots = \"/tmp/snaps\"\n\n[[worker.zones]]\nname = \"door\"\ncameras = [\"cam-1\"]\npolygon = [[0, 0], [100, 0], [100, 80]]\nrule = \"loiter\"\ndwell = \"4s\"\n",
    );
    let l = load_ok(Sources {
        file: Some(f.path().to_path_buf()),
        ..Default::default()
    });
    let zones = &l.config.worker.zones;
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0].dwell, Some(std::time::Duration::from_secs(4)));
    assert_eq!(zones[0].label, "person", "the default label");
    let bad = file(
        "[[worker.zones]]\nname = \"door\"\npolygon = [[0, 0], [1, 1]]\nrule = \"presence\"\n",
    );
    let e = load(Sources {
        file: Some(bad.path().to_path_buf()),
        ..Default::default()
    })
    .err()
    .unwrap_or_default();
    assert!(
        e.contains("zone \"door\"") && e.contains("at least 3 corners"),
        "{e}"
    );
}
