//! `files-server`: parses the command line and hands over to the library.

use clap::Parser as _;
use files_server::cli::{self, Cli};

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    match cli::run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            files_server::telemetry::fatal(&error);
            std::process::ExitCode::FAILURE
        }
    }
}
