//! The command line: serve (the default), `dev-token`.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use files_adapters::jwks::{DevClaims, DevKey};
use files_adapters::postgres::PostgresStore;
use files_core::{DeviceId, TenantId};

use crate::config::{KeySource, Settings};
use crate::startup::Application;
use crate::telemetry;
use crate::wiring::{DEV_KEY_FILE, Overrides};

/// The Files service: pre-signed S3 URLs for device uploads and downloads.
///
/// Configured with FILES_* environment variables, on top of a TOML file named by FILES_CONFIG
/// (see docs/configuration.md). With none of the dependency variables set it runs the embedded
/// default: everything in one process.
#[derive(Debug, Parser)]
#[command(name = "files-server", version)]
pub struct Cli {
    /// What to do; serves when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default); pending database migrations are applied first.
    Serve,
    /// Apply pending database migrations (FILES_DATABASE_URL) and exit.
    Migrate,
    /// Print a token that the embedded default accepts, signed with the development key in
    /// FILES_DEV_DIR (created if missing). The token is on the last line.
    DevToken {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// The device: a device token.
        #[arg(long, required_unless_present_any = ["service", "platform"], conflicts_with_all = ["service", "platform"])]
        device: Option<DeviceId>,
        /// A tenant-service token (scope files:admin) instead of a device token.
        #[arg(long, conflicts_with = "platform")]
        service: bool,
        /// A platform token (scope files:platform: every tenant's settings and usage, no files).
        #[arg(long)]
        platform: bool,
        /// Lifetime in seconds, at most `FILES_TOKEN_MAX_LIFETIME_SECS`.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        /// How many tokens to print, one a line, each with its own `jti` (a fleet's devices
        /// each replacing their token: scripts/bench's fleet mix).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        count: u32,
    },
}

/// Runs the command line.
///
/// # Errors
/// Configuration, start-up or serving errors, with the variable or step named.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::DevToken {
            tenant,
            device,
            service,
            platform,
            ttl_secs,
            count,
        } => dev_token(
            &settings,
            DevClaims {
                tenant,
                device,
                admin: service,
                platform,
            },
            Duration::from_secs(ttl_secs),
            count,
        ),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    telemetry::init(&settings.log);
    for variable in &settings.unknown_variables {
        tracing::warn!(%variable, "unknown variable ignored (a typo?); docs/configuration.md lists them all");
    }
    let embedded = settings.is_embedded_default();
    let listen = settings.listen;
    let app = Application::build(settings, Overrides::default()).await?;
    if embedded {
        tracing::warn!(
            "development profile (embedded default): everything runs in this process; metadata is lost on exit, \
             events are only logged, tokens are signed by a local development key. Not for production."
        );
    }
    for line in app.profile() {
        tracing::info!("{line}");
    }
    tracing::info!("listening on http://{}:{}", listen.ip(), app.port());
    app.run_until(crate::startup::termination())
        .await
        .context("server failed")
}

#[allow(clippy::print_stdout)]
async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let Some(database) = &settings.database else {
        anyhow::bail!("FILES_DATABASE_URL: required by migrate");
    };
    let applied = PostgresStore::new(database.clone())
        .context("FILES_DATABASE_URL")?
        .migrate()
        .await
        .context("FILES_DATABASE_URL: applying migrations")?;
    println!("applied {applied} migration(s)");
    Ok(())
}

#[allow(clippy::print_stdout)]
fn dev_token(settings: &Settings, claims: DevClaims, ttl: Duration, count: u32) -> anyhow::Result<()> {
    anyhow::ensure!(
        matches!(settings.tokens.keys, KeySource::DevKey),
        "dev-token signs with the embedded default's development key; unset FILES_JWKS_URL and FILES_JWKS_FILE"
    );
    let max = settings.tokens.jwt.max_token_lifetime;
    anyhow::ensure!(
        ttl <= max,
        "--ttl-secs: at most {} seconds, the longest lifetime the server accepts (FILES_TOKEN_MAX_LIFETIME_SECS)",
        max.as_secs()
    );
    let path = settings.dev_dir.join(DEV_KEY_FILE);
    let key = DevKey::load_or_create(&path).with_context(|| format!("FILES_DEV_DIR: {}", path.display()))?;
    let kind = match claims.device {
        Some(device) => format!("device {device}"),
        None if claims.platform => "the platform (files:platform; the tenant is not read)".to_owned(),
        None => "the tenant service (files:admin)".to_owned(),
    };
    let (issuer, audience) = (&settings.tokens.jwt.issuer, &settings.tokens.jwt.audience);
    let plural = if count == 1 { "" } else { "s" };
    println!(
        "# {count} development token{plural} for {kind} of tenant {}, valid {}s",
        claims.tenant,
        ttl.as_secs()
    );
    // Many tokens go through one locked, buffered stdout.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        let token = key.mint(&claims, issuer, audience, ttl)?;
        writeln!(out, "{token}").context("stdout")?;
    }
    out.flush().context("stdout")?;
    Ok(())
}
