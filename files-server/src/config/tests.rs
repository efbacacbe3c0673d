//! The configuration's tests: reading, bounds, the config file, secrets, and the tables against
//! what is read and what docs/configuration.md documents.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use files_adapters::redis::RedisConfig;

use super::vars::Vars;
use super::*;

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::from_vars(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
}

#[test]
fn nothing_set_is_the_embedded_default() -> Result<(), ConfigError> {
    let s = settings(&[])?;
    assert!(s.is_embedded_default());
    assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
    assert_eq!(s.limits.upload_expiry, Duration::from_secs(900));
    assert_eq!(s.limits.download_expiry, Duration::from_secs(300));
    Ok(())
}

#[test]
fn workers_and_the_near_cache_are_read() -> Result<(), ConfigError> {
    let s = settings(&[])?;
    assert_eq!(s.workers, None);
    let s = settings(&[
        ("FILES_WORKERS", "3"),
        ("FILES_REDIS_URL", "redis://x"),
        ("FILES_REDIS_NEAR_CACHE_CAPACITY", "0"),
        ("FILES_REDIS_NEAR_CACHE_MAX_BYTES", "1048576"),
    ])?;
    assert_eq!(s.workers.map(std::num::NonZeroUsize::get), Some(3));
    let near = |s: &Settings| {
        s.redis
            .as_ref()
            .map(|redis| (redis.near_cache_capacity, redis.near_cache_max_bytes))
    };
    assert_eq!(near(&s), Some((0, 1_048_576)));
    let s = settings(&[("FILES_REDIS_URL", "redis://x")])?;
    assert_eq!(
        near(&s),
        Some((
            RedisConfig::DEFAULT_NEAR_CACHE_CAPACITY,
            RedisConfig::DEFAULT_NEAR_CACHE_MAX_BYTES
        ))
    );
    Ok(())
}

#[test]
fn the_signature_library_is_read_and_must_be_built_in() {
    use files_adapters::jwks::SignatureLibrary;
    let library = |vars: &[(&str, &str)]| settings(vars).map(|s| s.tokens.jwt.signature_library);
    assert_eq!(library(&[]).ok(), Some(SignatureLibrary::JwtSimple));
    assert_eq!(
        library(&[("FILES_TOKEN_VERIFIER", "jwt-simple")]).ok(),
        Some(SignatureLibrary::JwtSimple)
    );
    let jsonwebtoken = library(&[("FILES_TOKEN_VERIFIER", "jsonwebtoken")]);
    if SignatureLibrary::JsonWebToken.is_built() {
        assert_eq!(jsonwebtoken.ok(), Some(SignatureLibrary::JsonWebToken));
    } else {
        let error = jsonwebtoken.err().map(|e| (e.variable, e.problem));
        assert!(
            error
                .as_ref()
                .is_some_and(|(variable, problem)| *variable == "FILES_TOKEN_VERIFIER"
                    && problem.contains("--features jsonwebtoken")),
            "{error:?}"
        );
    }
    let error = library(&[("FILES_TOKEN_VERIFIER", "ring")]).err();
    assert!(
        error
            .as_ref()
            .is_some_and(|e| e.variable == "FILES_TOKEN_VERIFIER" && e.problem.contains("jwt-simple or jsonwebtoken")),
        "{error:?}"
    );
}

#[test]
fn wrong_values_name_their_variable() {
    let cases: [(&[(&str, &str)], &str); 13] = [
        (&[("FILES_WORKERS", "0")], "FILES_WORKERS"),
        (
            &[
                ("FILES_REDIS_URL", "redis://x"),
                ("FILES_REDIS_NEAR_CACHE_CAPACITY", "-1"),
            ],
            "FILES_REDIS_NEAR_CACHE_CAPACITY",
        ),
        (
            &[
                ("FILES_REDIS_URL", "redis://x"),
                ("FILES_REDIS_NEAR_CACHE_CAPACITY", "many"),
            ],
            "FILES_REDIS_NEAR_CACHE_CAPACITY",
        ),
        (
            &[
                ("FILES_REDIS_URL", "redis://x"),
                ("FILES_REDIS_NEAR_CACHE_MAX_BYTES", "64MiB"),
            ],
            "FILES_REDIS_NEAR_CACHE_MAX_BYTES",
        ),
        (
            &[
                ("FILES_DATABASE_URL", "postgres://x"),
                ("FILES_DATABASE_TIMEOUT_MS", "0"),
            ],
            "FILES_DATABASE_TIMEOUT_MS",
        ),
        (
            &[("FILES_REDIS_URL", "redis://x"), ("FILES_REDIS_TTL_SECS", "abc")],
            "FILES_REDIS_TTL_SECS",
        ),
        (&[("FILES_LISTEN", "not-an-address")], "FILES_LISTEN"),
        (&[("FILES_S3_ENDPOINT", "ftp://x")], "FILES_S3_ENDPOINT"),
        (&[("FILES_S3_ENDPOINT", "http://x")], "FILES_S3_ACCESS_KEY"),
        (&[("FILES_JWKS_URL", "https://dsts/jwks")], "FILES_TOKEN_ISSUER"),
        (
            &[("FILES_UPLOAD_URL_EXPIRY_SECS", "604801")],
            "FILES_UPLOAD_URL_EXPIRY_SECS",
        ),
        (&[("FILES_MAX_UPLOAD_SIZE", "-1")], "FILES_MAX_UPLOAD_SIZE"),
        (
            &[("FILES_AMQP_INGEST_QUEUE", "minio-events")],
            "FILES_AMQP_INGEST_QUEUE",
        ),
    ];
    for (vars, variable) in cases {
        let error = settings(vars).err().map(|e| e.variable);
        assert_eq!(error, Some(variable), "{vars:?}");
    }
}

#[test]
fn secrets_are_not_printed() -> Result<(), ConfigError> {
    let s = settings(&[
        ("FILES_S3_ENDPOINT", "http://127.0.0.1:3900"),
        ("FILES_S3_ACCESS_KEY", "GK1"),
        ("FILES_S3_SECRET_KEY", "very-secret-value"),
        ("FILES_EVENTS_SECRET", "hook-secret-value"),
        ("FILES_DATABASE_URL", "postgres://files:db-password-value@db/files"),
        ("FILES_REDIS_URL", "redis://:redis-password-value@cache:6379"),
        ("FILES_AMQP_URL", "amqp://files:amqp-password-value@broker:5672/%2f"),
    ])?;
    let printed = format!("{s:?}");
    assert!(!printed.contains("very-secret-value"));
    assert!(!printed.contains("hook-secret-value"));
    assert!(!printed.contains("db-password-value"));
    assert!(!printed.contains("redis-password-value"));
    assert!(!printed.contains("amqp-password-value"));
    Ok(())
}

#[test]
fn the_jwks_url_needs_https_or_an_explicit_allowance() -> Result<(), ConfigError> {
    let url = "http://dsts:8080/jwks?access_token=query-secret-value";
    let issuer = [("FILES_TOKEN_ISSUER", "iss"), ("FILES_TOKEN_AUDIENCE", "aud")];
    let refused = settings(&[&issuer[..], &[("FILES_JWKS_URL", url)]].concat()).err();
    assert_eq!(refused.as_ref().map(|e| e.variable), Some("FILES_JWKS_URL"));
    assert!(refused.is_some_and(|e| e.problem.contains("FILES_JWKS_ALLOW_HTTP")));
    let wrong = settings(
        &[
            &issuer[..],
            &[("FILES_JWKS_URL", url), ("FILES_JWKS_ALLOW_HTTP", "yes")],
        ]
        .concat(),
    );
    assert_eq!(wrong.err().map(|e| e.variable), Some("FILES_JWKS_ALLOW_HTTP"));

    let allowed = settings(
        &[
            &issuer[..],
            &[("FILES_JWKS_URL", url), ("FILES_JWKS_ALLOW_HTTP", "true")],
        ]
        .concat(),
    )?;
    assert!(matches!(&allowed.tokens.keys, KeySource::Url(source) if source.allow_http && source.url == url));
    let https = settings(&[&issuer[..], &[("FILES_JWKS_URL", "https://dsts/jwks")]].concat())?;
    assert!(matches!(&https.tokens.keys, KeySource::Url(source) if !source.allow_http));
    Ok(())
}

#[test]
fn the_jwks_url_is_never_printed_whole() -> Result<(), ConfigError> {
    let url = "https://user:url-password-value@dsts/jwks?access_token=query-secret-value";
    let s = settings(&[
        ("FILES_JWKS_URL", url),
        ("FILES_TOKEN_ISSUER", "iss"),
        ("FILES_TOKEN_AUDIENCE", "aud"),
    ])?;
    let printed = format!("{s:?}");
    assert!(printed.contains("https://***@dsts/jwks?***"), "{printed}");
    assert!(!printed.contains("url-password-value") && !printed.contains("query-secret-value"));
    // A value that does not parse is quoted redacted too.
    let wrong = settings(&[(
        "FILES_JWKS_URL",
        "https://user:url-password-value@dsts:port/?query-secret-value",
    )]);
    let message = wrong.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.starts_with("FILES_JWKS_URL: "), "{message}");
    assert!(!message.contains("url-password-value") && !message.contains("query-secret-value"));
    Ok(())
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("temp file: {e}"));
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap_or_else(|e| panic!("write: {e}"));
    file
}

fn with_file(file: &tempfile::NamedTempFile, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let path = file.path().display().to_string();
    let mut vars = vec![("FILES_CONFIG".to_owned(), path)];
    vars.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Settings::from_vars(vars)
}

#[test]
fn the_config_file_is_read_and_variables_override_it() -> Result<(), ConfigError> {
    let file = config_file(
        "max_upload_size = 1000\nlisten = \"127.0.0.1:9999\"\ns3_path_style = false\n\
         s3_endpoint = \"http://store:9000\"\ns3_access_key = \"GK1\"\ns3_secret_key = \"x\"\n\
         log_format = \"json\"\nshutdown_grace_secs = 7\n",
    );
    let s = with_file(&file, &[])?;
    assert_eq!(s.limits.max_upload_size, 1000);
    assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 9999)));
    assert!(matches!(&s.store, StoreSettings::S3(c) if !c.path_style));
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.shutdown.grace, Duration::from_secs(7));

    let s = with_file(
        &file,
        &[("FILES_MAX_UPLOAD_SIZE", "2000"), ("FILES_LOG_FORMAT", "human")],
    )?;
    assert_eq!(s.limits.max_upload_size, 2000, "the variable wins");
    assert_eq!(s.log.format, LogFormat::Human);
    assert_eq!(
        s.listen,
        SocketAddr::from(([127, 0, 0, 1], 9999)),
        "the rest still from the file"
    );
    Ok(())
}

#[test]
fn an_unknown_key_stops_start_up_naming_it() {
    let file = config_file("max_upload_size = 1000\nmax_uplaod_size = 5\n");
    let error = with_file(&file, &[]).err();
    assert_eq!(error.as_ref().map(|e| e.variable), Some("FILES_CONFIG"));
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("unknown key `max_uplaod_size`"), "{message}");
    // Keys are the variables' names in lower case, without FILES_; FILES_CONFIG is not one.
    for text in [
        "MAX_UPLOAD_SIZE = 5",
        "files_max_upload_size = 5",
        "config = \"x.toml\"",
        "[database]\nurl = \"x\"",
    ] {
        let error = with_file(&config_file(text), &[]).err().map(|e| e.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("unknown key")),
            "{text}: {error:?}"
        );
    }
}

#[test]
fn a_wrong_value_in_the_file_names_the_variable_and_the_key() {
    let file = config_file("redis_url = \"redis://cache\"\nredis_ttl_secs = \"1h\"\n");
    let error = with_file(&file, &[]).err();
    assert_eq!(error.as_ref().map(|e| e.variable), Some("FILES_REDIS_TTL_SECS"));
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("`redis_ttl_secs`") && message.contains("1h"),
        "{message}"
    );
    // The same value from the environment is not blamed on the file.
    let error = with_file(&file, &[("FILES_REDIS_TTL_SECS", "1h")])
        .err()
        .map(|e| e.to_string());
    assert!(
        error.as_deref().is_some_and(|e| !e.contains("redis_ttl_secs")),
        "{error:?}"
    );

    let error = with_file(&config_file("body_timeout_secs = 1.5"), &[]).err();
    assert_eq!(error.map(|e| e.variable), Some("FILES_BODY_TIMEOUT_SECS"));
    let error = with_file(&config_file("log_format = \"xml\""), &[]).err();
    assert_eq!(error.map(|e| e.variable), Some("FILES_LOG_FORMAT"));
}

#[test]
fn a_file_that_is_not_toml_or_missing_names_files_config_without_quoting_it() {
    let file = config_file("s3_secret_key = \"half-a-secret\n");
    let error = with_file(&file, &[]).err();
    assert_eq!(error.as_ref().map(|e| e.variable), Some("FILES_CONFIG"));
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("line 1") && !message.contains("half-a-secret"),
        "{message}"
    );
    let missing = settings(&[("FILES_CONFIG", "/nonexistent/files.toml")]).err();
    assert_eq!(missing.map(|e| e.variable), Some("FILES_CONFIG"));
}

#[test]
fn the_token_lifetime_is_read_and_bounded() -> Result<(), ConfigError> {
    let lifetime = |s: &Settings| s.tokens.jwt.max_token_lifetime;
    assert_eq!(lifetime(&settings(&[])?), Duration::from_secs(86_400));
    let s = settings(&[("FILES_TOKEN_MAX_LIFETIME_SECS", "3600")])?;
    assert_eq!(lifetime(&s), Duration::from_secs(3600));
    for wrong in ["0", "315360001", "1d"] {
        let error = settings(&[("FILES_TOKEN_MAX_LIFETIME_SECS", wrong)]).err();
        assert_eq!(
            error.map(|e| e.variable),
            Some("FILES_TOKEN_MAX_LIFETIME_SECS"),
            "{wrong}"
        );
    }
    Ok(())
}

#[cfg(unix)]
#[test]
fn a_config_file_others_could_change_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let file = config_file("max_upload_size = 1000\n");
    let set_mode = |mode: u32| {
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
    };
    let refused = |problem: &str| {
        let error = with_file(&file, &[]).err();
        assert_eq!(error.as_ref().map(|e| e.variable), Some("FILES_CONFIG"));
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(problem), "{message}");
    };
    for mode in [0o600, 0o644, 0o400] {
        set_mode(mode);
        let read = with_file(&file, &[]).map(|s| s.limits.max_upload_size);
        assert_eq!(read.ok(), Some(1000), "mode {mode:o}");
    }
    for mode in [0o664, 0o620, 0o602, 0o666, 0o622] {
        set_mode(mode);
        refused("writable by its group or others");
    }
    set_mode(0o600);
    // Owned by another user (only root can give a file away).
    let nobody = 65534;
    match std::os::unix::fs::chown(file.path(), Some(nobody), Some(nobody)) {
        Ok(()) => refused("owned by uid 65534"),
        Err(error) => eprintln!("not checking ownership (needs root): {error}"),
    }
}

#[test]
fn unknown_variables_are_reported() -> Result<(), ConfigError> {
    let s = settings(&[("FILES_MAX_UPLAOD_SIZE", "5"), ("FILES_LISTEN", "127.0.0.1:1")])?;
    assert_eq!(s.unknown_variables, ["FILES_MAX_UPLAOD_SIZE"]);
    Ok(())
}

/// [`VARIABLES`] is exactly what [`Settings`] reads, across the configurations that read
/// different variables (each branch of the store, the key source, the optional services).
#[test]
fn variables_is_what_is_read() -> Result<(), ConfigError> {
    let mut read = BTreeSet::new();
    let configurations: [&[(&str, &str)]; 4] = [
        &[],
        &[
            ("FILES_S3_ENDPOINT", "http://store:9000"),
            ("FILES_S3_ACCESS_KEY", "GK1"),
            ("FILES_S3_SECRET_KEY", "x"),
            ("FILES_JWKS_URL", "https://dsts/jwks"),
            ("FILES_TOKEN_ISSUER", "iss"),
            ("FILES_TOKEN_AUDIENCE", "aud"),
            ("FILES_DATABASE_URL", "postgres://db/files"),
            ("FILES_REDIS_URL", "redis://cache"),
            ("FILES_AMQP_URL", "amqp://broker:5672/%2f"),
            ("FILES_LOG", "info"),
        ],
        &[
            ("FILES_JWKS_FILE", "/keys.pem"),
            ("FILES_TOKEN_ISSUER", "iss"),
            ("FILES_TOKEN_AUDIENCE", "aud"),
        ],
        &[("FILES_CONFIG", "")],
    ];
    for pairs in configurations {
        let vars = Vars {
            values: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            from_file: HashMap::new(),
            read: RefCell::default(),
        };
        Settings::read(&vars)?;
        read.extend(vars.read.take());
    }
    read.insert("FILES_CONFIG"); // read by from_vars, before the rest
    let listed: BTreeSet<&str> = VARIABLES.iter().copied().collect();
    assert_eq!(read, listed);
    assert_eq!(listed.len(), VARIABLES.len(), "no name twice");
    assert!(PRODUCTION_VARIABLES.iter().all(|v| listed.contains(v)));
    Ok(())
}

#[test]
fn the_dev_dir_defaults_to_a_per_user_directory() -> Result<(), ConfigError> {
    let s = settings(&[])?;
    assert_eq!(s.dev_dir, files_adapters::jwks::DevKey::default_dir());
    assert_ne!(s.dev_dir, std::env::temp_dir().join("files-server-dev"));
    assert_eq!(
        settings(&[("FILES_DEV_DIR", "/srv/dev")])?.dev_dir,
        PathBuf::from("/srv/dev")
    );
    Ok(())
}

/// The rows of docs/configuration.md's tables that document a variable: its name, the default
/// column and the whole row.
fn documented() -> Vec<(String, String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let default = cells.get(2)?;
            name.starts_with("FILES_")
                .then(|| (name.to_owned(), (*default).to_owned(), line.to_owned()))
        })
        .collect()
}

/// docs/configuration.md documents every variable of the tables with its default (and says a
/// secret is one), and no variable the tables do not have.
#[test]
fn the_docs_document_every_variable_with_its_default() {
    let documented = documented();
    for var in variables() {
        let Some((_, default, row)) = documented.iter().find(|(name, ..)| name == var.name) else {
            panic!("docs/configuration.md does not document {}", var.name);
        };
        if let Some(text) = var.default_text() {
            assert!(
                default.contains(&format!("`{text}`")),
                "docs/configuration.md gives {} the default {default:?}, the table `{text}`",
                var.name
            );
        }
        if var.secret {
            assert!(
                row.contains("(secret)"),
                "docs/configuration.md: say {} is a secret",
                var.name
            );
        }
    }
    for (name, ..) in &documented {
        assert!(
            VARIABLES.contains(&name.as_str()),
            "docs/configuration.md documents {name}, which no table has"
        );
    }
}

/// Each entry is well formed: a `FILES_` name in upper case, given once, whose default is
/// within its bounds.
#[test]
fn the_tables_are_well_formed() {
    let mut keys = BTreeSet::new();
    for var in variables() {
        assert!(
            var.name.starts_with("FILES_") && var.name == var.name.to_ascii_uppercase(),
            "{}",
            var.name
        );
        assert!(keys.insert(var.key()), "{} is in two tables", var.name);
        assert!(!var.about.is_empty(), "{} has no description", var.name);
        if let Some(bounds) = &var.bounds {
            let default = var.default_text().and_then(|text| text.parse::<u64>().ok());
            assert!(
                default.is_some_and(|n| bounds.contains(&n)),
                "{}: default {default:?} outside {bounds:?}",
                var.name
            );
        }
    }
}
