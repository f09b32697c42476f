//! Unit tests for parsing and validation.

use super::*;

/// Parses `text` expecting failure; returns `(line, column, message)` triples.
fn problems(text: &str) -> Vec<(usize, usize, String)> {
    match Config::from_toml(text, "rookery.toml") {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors
            .0
            .into_iter()
            .map(|e| {
                assert_eq!(e.origin, "rookery.toml");
                (e.line, e.column, e.message)
            })
            .collect(),
    }
}

fn ok(text: &str) -> Config {
    match Config::from_toml(text, "rookery.toml") {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors:\n{errors}"),
    }
}

#[test]
fn defaults() {
    let config = Config::default();
    assert_eq!(config.hosts, ["localhost"]);
    assert!(config.admins.is_empty());
    assert_eq!(config.data_dir, PathBuf::from("rookery-data"));
    assert_eq!(config.listen.c2s, Some("127.0.0.1:5222".parse().unwrap()));
    assert_eq!(
        config.listen.c2s_tls,
        Some("127.0.0.1:5223".parse().unwrap())
    );
    assert_eq!(config.listen.admin_socket, None);
    assert_eq!(
        config.admin_socket_path(),
        PathBuf::from("rookery-data").join("admin.sock")
    );
    assert_eq!(config.tls, Tls::default());
    assert_eq!(config.tls.cert, None);
    let limits = &config.limits;
    assert_eq!(limits.max_stanza_size, 262_144);
    assert_eq!(limits.max_depth, 32);
    assert_eq!(limits.max_attributes, 64);
    assert_eq!(limits.outbound_queue, 1000);
    assert_eq!(limits.idle_timeout_secs, 300);
    assert_eq!(limits.handshake_timeout_secs, 60);
    assert_eq!(limits.max_offline_messages, 1000);
    assert_eq!(limits.auth_failures_per_minute, 10);
    let auth = &config.auth;
    assert_eq!(auth.backend, "internal");
    assert_eq!(auth.scram_iterations, 4096);
    assert!(!auth.allow_plaintext_on_loopback);
    assert!(auth.allow_plain);
    assert!(!auth.registration);
    assert_eq!(auth.failure_delay_ms, 1000);
    assert!(config.modules.disabled.is_empty());
    assert!(!config.modules.version_show_os);
    assert_eq!(config.log.level, "info");
}

#[test]
fn empty_file_is_all_defaults() {
    assert_eq!(ok(""), Config::default());
    assert_eq!(ok("# nothing here\n\n"), Config::default());
}

#[test]
fn example_parses_to_defaults() {
    assert_eq!(ok(EXAMPLE), Config::default());
}

#[test]
fn example_documents_every_key() {
    let sections: &[(&str, &[&str])] = &[
        ("listen", LISTEN_KEYS),
        ("tls", TLS_KEYS),
        ("limits", LIMITS_KEYS),
        ("auth", AUTH_KEYS),
        ("modules", MODULES_KEYS),
        ("log", LOG_KEYS),
        ("muc", MUC_KEYS),
        ("neerc", NEERC_KEYS),
        ("s2s", S2S_KEYS),
    ];
    for key in TOP_KEYS {
        if *key == "component" {
            // An array of tables, none by default: documented commented out.
            for line in ["\n# [[component]]\n", "\n# name = ", "\n# secret = "] {
                assert!(EXAMPLE.contains(line), "{line:?}");
            }
        } else if sections.iter().any(|(name, _)| name == key) {
            assert!(EXAMPLE.contains(&format!("\n[{key}]\n")), "[{key}]");
        } else {
            assert!(EXAMPLE.contains(&format!("\n{key} = ")), "{key}");
        }
    }
    for (section, keys) in sections {
        let start = EXAMPLE.find(&format!("\n[{section}]\n")).unwrap();
        let body = &EXAMPLE[start + section.len() + 3..];
        let body = &body[..body.find("\n[").unwrap_or(body.len())];
        for key in *keys {
            assert!(
                body.contains(&format!("\n{key} = ")) || body.contains(&format!("\n# {key} = ")),
                "{section}.{key} missing from the example"
            );
        }
    }
}

#[test]
fn full_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, "cert").unwrap();
    std::fs::write(&key, "key").unwrap();
    let text = format!(
        r#"
hosts = ["Example.ORG", "chat.example.net"]
admins = ["Alice@example.org", "bob@chat.example.net"]
data_dir = "/var/lib/rookery"

[listen]
c2s = "[::]:5222"
c2s_tls = false
admin_socket = "/run/rookery/admin.sock"
component = "127.0.0.1:15347"

[tls]
cert = '{}'
key = '{}'

[limits]
max_stanza_size = 65536
max_depth = 16
max_attributes = 32
outbound_queue = 500
idle_timeout_secs = 0
handshake_timeout_secs = 30
max_offline_messages = 0
auth_failures_per_minute = 5
adhoc_session_secs = 60
adhoc_sessions_per_user = 3
idle_user_secs = 120

[auth]
backend = "internal"
scram_iterations = 10000
allow_plaintext_on_loopback = true
allow_plain = false
registration = true
failure_delay_ms = 0

[modules]
disabled = ["version", "last"]
version_show_os = true

[log]
level = "debug"

[muc]
enabled = false
subdomain = "rooms"
create = "admins"
max_history = 10
max_occupants = 600
max_subject_chars = 200

[neerc]
enabled = false
subdomain = "contest"
default_room = "Jury"
lax_status = true
clock_file = "/var/lib/pcms/clock.xml"
clock_poll_ms = 4000

[[component]]
name = "Echo.example.org"
secret = "s3cret"
"#,
        cert.display(),
        key.display()
    );
    let config = ok(&text);
    assert_eq!(
        config,
        Config {
            hosts: vec!["example.org".into(), "chat.example.net".into()],
            admins: vec!["alice@example.org".into(), "bob@chat.example.net".into()],
            data_dir: "/var/lib/rookery".into(),
            listen: Listen {
                c2s: Some("[::]:5222".parse().unwrap()),
                c2s_tls: None,
                admin_socket: Some("/run/rookery/admin.sock".into()),
                component: Some("127.0.0.1:15347".parse().unwrap()),
                s2s: Some("127.0.0.1:5269".parse().unwrap()),
            },
            tls: Tls {
                cert: Some(cert),
                key: Some(key),
            },
            limits: Limits {
                max_stanza_size: 65536,
                max_depth: 16,
                max_attributes: 32,
                outbound_queue: 500,
                idle_timeout_secs: 0,
                handshake_timeout_secs: 30,
                max_offline_messages: 0,
                auth_failures_per_minute: 5,
                adhoc_session_secs: 60,
                adhoc_sessions_per_user: 3,
                idle_user_secs: 120,
            },
            auth: Auth {
                backend: "internal".into(),
                scram_iterations: 10000,
                allow_plaintext_on_loopback: true,
                allow_plain: false,
                registration: true,
                failure_delay_ms: 0,
                extauth_program: Vec::new(),
                extauth_pool_size: 1,
                extauth_timeout_secs: 10,
            },
            modules: Modules {
                disabled: vec!["version".into(), "last".into()],
                version_show_os: true,
            },
            log: Log {
                level: "debug".into()
            },
            muc: Muc {
                enabled: false,
                subdomain: "rooms".into(),
                create: "admins".into(),
                max_history: 10,
                max_occupants: 600,
                max_subject_chars: 200,
            },
            neerc: Neerc {
                enabled: false,
                subdomain: "contest".into(),
                default_room: "jury".into(),
                lax_status: true,
                clock_file: Some(PathBuf::from("/var/lib/pcms/clock.xml")),
                clock_poll_ms: 4000,
            },
            components: vec![Component {
                name: "echo.example.org".into(),
                secret: "s3cret".into(),
            }],
            s2s: Default::default(),
        }
    );
    assert_eq!(
        config.admin_socket_path(),
        PathBuf::from("/run/rookery/admin.sock")
    );
}

#[test]
fn inline_and_dotted_tables() {
    let config =
        ok("listen = { c2s = \"127.0.0.1:0\", c2s_tls = \"127.0.0.1:0\" }\nlog.level = \"warn\"\n");
    assert_eq!(config.listen.c2s, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(config.listen.c2s_tls, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(config.log.level, "warn");
}

#[test]
fn four_mistakes_reported_together() {
    let text = "\
hosts = [\"example.org\"]
admins = [\"alice@example.org\"]
listn = \"0.0.0.0:5222\"
[listen]
c2s = \"127.0.0.1:99999\"
[limits]
max_depth = 1000
[log]
level = 5
";
    assert_eq!(
        problems(text),
        [
            (
                3,
                1,
                r#"unknown key "listn" in top level (did you mean "listen"?)"#.to_owned()
            ),
            (
                5,
                7,
                r#"listen.c2s: "127.0.0.1:99999" is not a socket address (expected e.g. "127.0.0.1:5222")"#.to_owned()
            ),
            (
                7,
                13,
                "limits.max_depth: 1000 is out of range (allowed: 4 to 256)".to_owned()
            ),
            (
                9,
                9,
                "log.level: expected a string, found integer".to_owned()
            ),
        ]
    );
    let errors = Config::from_toml(text, "rookery.toml").unwrap_err();
    let shown = errors.to_string();
    assert_eq!(shown.lines().count(), 4);
    assert!(shown.starts_with(
        "rookery.toml:3:1: unknown key \"listn\" in top level (did you mean \"listen\"?)\n"
    ));
}

#[test]
fn errors_are_sorted_by_position() {
    // `[log]` is defined before `[limits]` in the file but checked later.
    let text = "[log]\nlevel = \"loud\"\n[limits]\nmax_depth = 1\n";
    let found = problems(text);
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].0, found[1].0), (2, 4));
}

#[test]
fn syntax_error_has_line_and_column() {
    let found = problems("hosts = [\"a\"]\nlimits = [1,\n  2,, ]\n");
    assert_eq!(found.len(), 1);
    let (line, column, message) = &found[0];
    assert_eq!((*line, *column), (3, 5));
    assert!(message.starts_with("TOML syntax error: "), "{message}");

    let found = problems("[auth]\nregistration = true\nregistration = false\n");
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0, found[0].1), (3, 1));
    assert!(found[0].2.contains("duplicate key"), "{}", found[0].2);
}

#[test]
fn tls_cert_without_key() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "cert").unwrap();
    let text = format!("[tls]\ncert = '{}'\n", cert.display());
    assert_eq!(
        problems(&text),
        [(
            2,
            1,
            "tls.cert is set but tls.key is not (set both or neither)".to_owned()
        )]
    );
    let text = "[tls]\nkey = 'key.pem'\n";
    let found = problems(text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.2.contains("tls.key: file") && p.2.contains("does not exist"))
    );
    assert!(
        found
            .iter()
            .any(|p| p.2 == "tls.key is set but tls.cert is not (set both or neither)")
    );
}

#[test]
fn tls_files_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let text = format!(
        "[tls]\ncert = '{}'\nkey = '{}'\n",
        missing.display(),
        dir.path().display()
    );
    let found = problems(&text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!((found[0].0, found[0].1), (2, 8));
    assert!(found[0].2.starts_with("tls.cert: file "), "{}", found[0].2);
    assert_eq!((found[1].0, found[1].1), (3, 7));
    assert!(
        found[1].2.ends_with("is a directory, not a file"),
        "{}",
        found[1].2
    );
}

#[test]
fn wrong_types() {
    let text = "\
hosts = 5
admins = [\"a@b\", 7]
data_dir = true
listen = 3
limits = { max_depth = \"deep\" }
[auth]
allow_plain = \"yes\"
scram_iterations = 4096.5
";
    let found = problems(text);
    let messages: Vec<_> = found.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(
        messages,
        [
            "hosts: expected an array of strings, found integer",
            "admins[1]: expected a string, found integer",
            "data_dir: expected a string, found boolean",
            "listen: expected a table, found integer",
            "limits.max_depth: expected an integer, found string",
            "auth.allow_plain: expected a boolean, found string",
            "auth.scram_iterations: expected an integer, found float",
        ]
    );
    assert_eq!((found[1].0, found[1].1), (2, 18));
}

#[test]
fn unknown_keys_and_tables_everywhere() {
    let text = "\
[listen]
c2 = \"127.0.0.1:5222\"
[tls]
keys = 'x'
[limits]
max_stanza = 1
[auth]
registation = true
[modules]
disable = []
[log]
levl = \"info\"
[lg]
level = \"info\"
[[limits.extra]]
a = 1
[frobnicate]
";
    let found = problems(text);
    let messages: Vec<_> = found.iter().map(|p| (p.0, p.1, p.2.as_str())).collect();
    assert_eq!(
        messages,
        [
            (
                2,
                1,
                r#"unknown key "c2" in [listen] (did you mean "c2s"?)"#
            ),
            (4, 1, r#"unknown key "keys" in [tls] (did you mean "key"?)"#),
            (
                6,
                1,
                r#"unknown key "max_stanza" in [limits] (did you mean "max_stanza_size"?)"#
            ),
            (
                8,
                1,
                r#"unknown key "registation" in [auth] (did you mean "registration"?)"#
            ),
            (
                10,
                1,
                r#"unknown key "disable" in [modules] (did you mean "disabled"?)"#
            ),
            (
                12,
                1,
                r#"unknown key "levl" in [log] (did you mean "level"?)"#
            ),
            (13, 1, "unknown table [lg] (did you mean [log]?)"),
            (15, 1, "unknown table [limits.extra]"),
            (17, 1, "unknown table [frobnicate]"),
        ]
    );
}

#[test]
fn suggestion_normalizes_dashes_and_case() {
    let found = problems("data-dir = \"x\"\nHosts = []\n");
    assert_eq!(
        found[0].2,
        r#"unknown key "data-dir" in top level (did you mean "data_dir"?)"#
    );
    assert_eq!(
        found[1].2,
        r#"unknown key "Hosts" in top level (did you mean "hosts"?)"#
    );
}

#[test]
fn hosts_validation() {
    let long = "a".repeat(1024);
    let text = format!(
        "hosts = [\"Example.org\", \"example.ORG\", \"\", \"a b\", \"u@h\", \"h/r\", \"a..b\", \"{long}\"]\n"
    );
    let messages: Vec<_> = problems(&text).into_iter().map(|p| p.2).collect();
    assert_eq!(messages.len(), 7, "{messages:?}");
    assert_eq!(messages[0], r#"hosts[1]: duplicate host "example.org""#);
    assert_eq!(messages[1], r#"hosts[2]: "" is not a valid domain (empty)"#);
    assert!(messages[2].starts_with("hosts[3]: \"a b\" is not a valid domain"));
    assert!(messages[3].contains("contains '@'"));
    assert!(messages[4].contains("contains '/'"));
    assert!(messages[5].contains("empty label"));
    assert!(messages[6].contains("longer than 1023 bytes"));

    assert_eq!(
        problems("hosts = []"),
        [(1, 9, "hosts: at least one host is required".to_owned())]
    );
}

#[test]
fn admins_validation() {
    let text = r#"admins = ["alice", "a@b@c", "@host", "user@", "a@b/res", "ok@host", "OK@host"]"#;
    let messages: Vec<_> = problems(text).into_iter().map(|p| p.2).collect();
    assert_eq!(messages.len(), 6, "{messages:?}");
    assert!(messages[0].starts_with(r#"admins[0]: "alice" is not a bare JID"#));
    assert!(messages[1].contains("more than one '@'"));
    assert!(messages[2].contains("empty user part"));
    assert!(messages[3].contains("invalid host part"));
    assert!(messages[4].contains("resource"));
    assert_eq!(messages[5], r#"admins[6]: duplicate admin "ok@host""#);
}

#[test]
fn listen_values() {
    let config = ok("[listen]\nc2s = false\nc2s_tls = \"0.0.0.0:5223\"\n");
    assert_eq!(config.listen.c2s, None);
    assert_eq!(config.listen.c2s_tls, Some("0.0.0.0:5223".parse().unwrap()));

    let found = problems("[listen]\nc2s = true\nc2s_tls = 5223\nadmin_socket = \"\"\n");
    let messages: Vec<_> = found.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(
        messages,
        [
            r#"listen.c2s: expected a socket address such as "127.0.0.1:5222", or false to disable, found true"#,
            "listen.c2s_tls: expected a socket address string or false, found integer",
            "listen.admin_socket: must not be empty",
        ]
    );

    let found = problems("[listen]\nc2s = \"127.0.0.1:6000\"\nc2s_tls = \"127.0.0.1:6000\"\n");
    assert_eq!(
        found,
        [(
            3,
            11,
            "listen.c2s_tls: 127.0.0.1:6000 is already used by listen.c2s".to_owned()
        )]
    );
}

#[test]
fn ranges() {
    let text = "\
[limits]
max_stanza_size = 9999
max_depth = 3
max_attributes = 5000
outbound_queue = -1
idle_timeout_secs = 86401
handshake_timeout_secs = 0
max_offline_messages = 1000001
auth_failures_per_minute = 0
[auth]
scram_iterations = 4095
failure_delay_ms = 10001
";
    let messages: Vec<_> = problems(text).into_iter().map(|p| p.2).collect();
    assert_eq!(
        messages,
        [
            "limits.max_stanza_size: 9999 is out of range (allowed: 10000 to 16777216)",
            "limits.max_depth: 3 is out of range (allowed: 4 to 256)",
            "limits.max_attributes: 5000 is out of range (allowed: 16 to 4096)",
            "limits.outbound_queue: -1 is out of range (allowed: 10 to 1000000)",
            "limits.idle_timeout_secs: 86401 is out of range (allowed: 0 to 86400)",
            "limits.handshake_timeout_secs: 0 is out of range (allowed: 1 to 3600)",
            "limits.max_offline_messages: 1000001 is out of range (allowed: 0 to 1000000)",
            "limits.auth_failures_per_minute: 0 is out of range (allowed: 1 to 100000)",
            "auth.scram_iterations: 4095 is out of range (allowed: 4096 to 1000000)",
            "auth.failure_delay_ms: 10001 is out of range (allowed: 0 to 10000)",
        ]
    );
    let config = ok("[limits]\nmax_stanza_size = 16777216\nmax_depth = 256\n");
    assert_eq!(config.limits.max_stanza_size, 16 * 1024 * 1024);
    assert_eq!(config.limits.max_depth, 256);
}

#[test]
fn enumerated_strings() {
    let messages: Vec<_> = problems("[auth]\nbackend = \"ldap\"\n[log]\nlevel = \"inf\"\n")
        .into_iter()
        .map(|p| p.2)
        .collect();
    assert_eq!(
        messages,
        [
            r#"auth.backend: unknown backend "ldap" (supported: "internal", "external")"#,
            r#"log.level: "inf" is not a log level (expected one of "error", "warn", "info", "debug", "trace"); did you mean "info"?"#,
        ]
    );
}

#[test]
fn modules_disabled() {
    let messages: Vec<_> = problems("[modules]\ndisabled = [\"last\", \"\", \"last\"]\n")
        .into_iter()
        .map(|p| p.2)
        .collect();
    assert_eq!(
        messages,
        [
            "modules.disabled[1]: module name must not be empty",
            r#"modules.disabled[2]: duplicate module "last""#,
        ]
    );
}

#[test]
fn columns_count_characters() {
    // "é" is two bytes but one column.
    let found = problems("hosts = [\"é\", 1]\n");
    assert_eq!((found[0].0, found[0].1), (1, 15));
}

#[test]
fn load_file_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rookery.toml");
    std::fs::write(
        &path,
        "hosts = [\"example.org\"]\n[log]\nlevel = \"trace\"\n",
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.hosts, ["example.org"]);
    assert_eq!(config.log.level, "trace");

    std::fs::write(&path, "\n\nhostz = []\n").unwrap();
    let errors = Config::load(&path).unwrap_err();
    assert_eq!(
        errors.to_string(),
        format!(
            "{}:3:1: unknown key \"hostz\" in top level (did you mean \"hosts\"?)",
            path.display()
        )
    );

    let missing = dir.path().join("missing.toml");
    let errors = Config::load(&missing).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].line, 0);
    let shown = errors.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}: cannot read configuration file: ",
            missing.display()
        )),
        "{shown}"
    );
}

#[test]
fn edit_distance_basics() {
    let d = |a: &str, b: &str| {
        edit_distance(
            &a.chars().collect::<Vec<_>>(),
            &b.chars().collect::<Vec<_>>(),
        )
    };
    assert_eq!(d("", ""), 0);
    assert_eq!(d("listn", "listen"), 1);
    assert_eq!(d("kitten", "sitting"), 3);
    assert_eq!(d("abc", ""), 3);
    assert_eq!(suggest("zzzz", TOP_KEYS), None);
}

#[test]
fn neerc_names_are_checked() {
    let p = problems("[neerc]\nsubdomain = \"a..b\"\ndefault_room = \"my room\"\nlax_status = 1\n");
    assert_eq!(p.len(), 3, "{p:?}");
    assert_eq!(p[0].0, 2);
    assert!(p[0].2.contains("neerc.subdomain"), "{p:?}");
    assert_eq!(p[1].0, 3);
    assert!(p[1].2.contains("not a room name"), "{p:?}");
    assert_eq!(p[2].0, 4);
}

#[test]
fn components_validation() {
    let text = r#"
hosts = ["example.org"]
[listen]
c2s = "127.0.0.1:5222"
component = "127.0.0.1:5222"
[[component]]
name = "echo.example.org"
secret = "one"
[[component]]
name = "Echo.example.org"
secret = "two"
[[component]]
name = "example.org"
secret = "three"
[[component]]
name = "conference.example.org"
secret = "four"
[[component]]
name = "neerc.example.org"
secret = ""
[[component]]
name = "a b"
password = "x"
"#;
    let messages: Vec<_> = problems(text).into_iter().map(|p| p.2).collect();
    assert_eq!(
        messages,
        [
            "listen.component: 127.0.0.1:5222 is already used by listen.c2s",
            r#"component[1].name: duplicate component "echo.example.org""#,
            r#"component[2].name: "example.org" is a hosted domain (hosts)"#,
            r#"component[3].name: "conference.example.org" is the domain of the built-in service [muc]"#,
            "component[4].secret: must not be empty",
            r#"component[5]: secret is required"#,
            r#"component[5].name: "a b" is not a valid domain (contains whitespace or control characters)"#,
            r#"unknown key "password" in [component]"#,
        ],
    );
    // A disabled service frees its domain; a component's secret is never shown.
    let config = ok(
        "[neerc]\nenabled = false\n[[component]]\nname = \"neerc.localhost\"\nsecret = \"hidden-value\"\n",
    );
    assert_eq!(config.components[0].name, "neerc.localhost");
    assert!(!format!("{config:?}").contains("hidden-value"));
    assert_eq!(
        problems("component = 1")
            .into_iter()
            .map(|p| p.2)
            .collect::<Vec<_>>(),
        ["component: expected an array of tables ([[component]]), found integer"]
    );
}

#[test]
fn external_auth_settings_are_checked_together() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("extauth.py");
    std::fs::write(&script, "").unwrap();
    let config = ok(&format!(
        "[auth]\nbackend = \"external\"\nextauth_program = [\"/usr/bin/python3\", '{}', \"a:b\"]\n\
         extauth_pool_size = 3\nextauth_timeout_secs = 2\n",
        script.display()
    ));
    assert_eq!(config.auth.backend, "external");
    assert_eq!(
        config.auth.extauth_program,
        ["/usr/bin/python3", &script.display().to_string(), "a:b"]
    );
    assert_eq!(config.auth.extauth_pool_size, 3);
    assert_eq!(config.auth.extauth_timeout_secs, 2);
    // A bare name is looked up in PATH when the program starts.
    ok("[auth]\nbackend = \"external\"\nextauth_program = [\"extauth\"]\n");

    let messages =
        |text: &str| -> Vec<String> { problems(text).into_iter().map(|p| p.2).collect() };
    assert_eq!(
        messages("[auth]\nbackend = \"external\"\n"),
        [
            r#"auth.backend = "external" needs auth.extauth_program = ["/path/to/program", "arguments"...]"#
        ]
    );
    assert_eq!(
        messages("[auth]\nbackend = \"external\"\nextauth_program = []\n"),
        ["auth.extauth_program: the external backend needs a program"]
    );
    assert_eq!(
        messages("[auth]\nextauth_program = [\"extauth\"]\n"),
        [r#"auth.extauth_program is only used with auth.backend = "external""#]
    );
    assert_eq!(
        messages(
            "[auth]\nbackend = \"external\"\nextauth_program = [\"/no/such/extauth\"]\n\
             allow_plain = false\nextauth_pool_size = 0\nextauth_timeout_secs = 301\n"
        ),
        [
            r#"auth.extauth_program[0]: program "/no/such/extauth" does not exist"#,
            r#"auth.allow_plain = false leaves no mechanism with auth.backend = "external" (SCRAM needs keys stored by this server)"#,
            "auth.extauth_pool_size: 0 is out of range (allowed: 1 to 64)",
            "auth.extauth_timeout_secs: 301 is out of range (allowed: 1 to 300)",
        ]
    );
    assert_eq!(
        messages("[auth]\nbackend = \"external\"\nextauth_program = [\"\", 1]\n"),
        [
            "auth.extauth_program[0]: the program must not be empty",
            "auth.extauth_program[1]: expected a string, found integer",
        ]
    );
}

#[test]
fn s2s_listener_and_static_hosts() {
    assert_eq!(
        Config::default().listen.s2s,
        Some("127.0.0.1:5269".parse().unwrap())
    );
    let config = ok(
        "[listen]\ns2s = false\n\n[s2s]\naccept_self_signed = true\nconnect_timeout_secs = 3\nidle_timeout_secs = 0\n\n[s2s.hosts]\n\"B.Example\" = \"127.0.0.1:5270\"\n\"c.example\" = \"xmpp.c.example:5269\"\n\"d.example\" = \"[::1]:5269\"\n",
    );
    assert_eq!(config.listen.s2s, None);
    assert!(config.s2s.accept_self_signed);
    assert_eq!(config.s2s.connect_timeout_secs, 3);
    assert_eq!(config.s2s.idle_timeout_secs, 0);
    assert_eq!(
        config.s2s.hosts.get("b.example").map(String::as_str),
        Some("127.0.0.1:5270")
    );
    assert_eq!(config.s2s.hosts.len(), 3);

    let found = problems(
        "[listen]\nc2s = \"127.0.0.1:6000\"\ns2s = \"127.0.0.1:6000\"\n\n[s2s]\nconnect_timeout_secs = 0\nhosts = { \"b.example\" = \"nowhere\", \"c example\" = \"c:5269\", \"d.example\" = \"d:0\" }\n",
    );
    let messages: Vec<&str> = found.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(messages.len(), 5, "{messages:?}");
    assert!(messages[0].contains("listen.s2s: 127.0.0.1:6000 is already used by listen.c2s"));
    assert!(messages[1].contains("s2s.connect_timeout_secs: 0 is out of range"));
    assert!(messages[2].contains("s2s.hosts.b.example: \"nowhere\" is not \"host:port\""));
    assert!(messages[3].contains("is not a valid domain"));
    assert!(messages[4].contains("s2s.hosts.d.example: \"d:0\" is not \"host:port\""));
    assert_eq!(found[0].0, 3);
}

#[test]
fn s2s_ca_file_must_exist() {
    assert_eq!(Config::default().s2s.ca_file, None);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "ca").unwrap();
    let config = ok(&format!("[s2s]\nca_file = '{}'\n", ca.display()));
    assert_eq!(config.s2s.ca_file, Some(ca));

    let missing = dir.path().join("missing.pem");
    let found = problems(&format!("[s2s]\nca_file = '{}'\n", missing.display()));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0, found[0].1), (2, 11));
    assert!(
        found[0].2.starts_with("s2s.ca_file: file ") && found[0].2.ends_with("does not exist"),
        "{}",
        found[0].2
    );
    let found = problems(&format!("[s2s]\nca_file = '{}'\n", dir.path().display()));
    assert!(
        found[0].2.ends_with("is a directory, not a file"),
        "{found:?}"
    );
    let found = problems("[s2s]\nca_file = ''\n");
    assert_eq!(found[0].2, "s2s.ca_file: must not be empty");
}
