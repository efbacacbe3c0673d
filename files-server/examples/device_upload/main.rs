//! A device uploading a file of any size to the Files service, resuming after an interruption.
//!
//! ```text
//! cargo run -p files-server -- dev-token --tenant T --device D      # a token (embedded default)
//! cargo run --example device_upload -- --token TOKEN FILE
//! ```
//!
//! A file up to the part size (8 MiB by default) goes in one PUT; a larger one in parts, each
//! through its own URL signed for the part's length and SHA-256. The upload in progress is
//! remembered in `FILE.upload.json`: run the same command again after an interruption (or try
//! one with `--stop-after 1`) and only the parts the store does not hold are sent. The logic is
//! in `client.rs`.

#![allow(clippy::print_stdout)]

mod client;

use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use clap::Parser;

/// Uploads FILE to the device's own root, resuming a multipart upload left unfinished.
#[derive(Debug, Parser)]
struct Args {
    /// The device's access token (its `tenant_id` and `device_id` claims name the root).
    #[arg(long)]
    token: String,
    /// The Files service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// The tenant, when the token does not say (read from the token otherwise).
    #[arg(long)]
    tenant: Option<String>,
    /// The device, when the token does not say.
    #[arg(long)]
    device: Option<String>,
    /// The name in the service (the file's own name by default).
    #[arg(long)]
    name: Option<String>,
    /// Part size in bytes, at least 5 MiB.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    part_size: u64,
    /// Stop after sending this many parts, to try resuming.
    #[arg(long)]
    stop_after: Option<usize>,
    /// The file.
    file: PathBuf,
}

/// A claim of the token, read without verifying it (the service verifies; the device only
/// needs its own ids to build the paths).
fn claim(token: &str, name: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims[name].as_str().map(str::to_owned)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tenant = args
        .tenant
        .or_else(|| claim(&args.token, "tenant_id"))
        .context("the token has no tenant_id claim: give --tenant")?;
    let device = args
        .device
        .or_else(|| claim(&args.token, "device_id"))
        .context("the token has no device_id claim: give --device")?;
    let name = match args.name {
        Some(name) => name,
        None => args
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .context("give --name")?
            .to_owned(),
    };
    let mut state = args.file.clone().into_os_string();
    state.push(".upload.json");
    let upload = client::Upload {
        api: args.api,
        token: args.token,
        tenant,
        device,
        file: args.file,
        name,
        part_size: args.part_size,
        state: state.into(),
        stop_after: args.stop_after,
    };
    let outcome = client::run(&upload).await?;
    println!("sent parts {:?}; already stored {:?}", outcome.sent, outcome.skipped);
    match outcome.file {
        Some(file) => println!("{}", serde_json::to_string_pretty(&file)?),
        None => println!("stopped early; run the same command again to resume"),
    }
    Ok(())
}
