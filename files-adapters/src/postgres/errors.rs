//! Errors: what can go wrong in a call ([`Failure`], with the rows and events that do not fit,
//! [`BadRow`] and [`BadEvent`]) and the one translation into the port's ([`translate`]).

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use files_core::{BoxError, PortError};
use uuid::Uuid;

use super::pool::ConnectError;

/// Setting up the store or its schema failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The configuration cannot work.
    #[error("invalid database configuration: {0}")]
    Config(&'static str),
    /// The database could not be reached.
    #[error("cannot connect to the database")]
    Connect(#[source] BoxError),
    /// The migrations could not be applied.
    #[error("database migration failed")]
    Migrate(#[source] BoxError),
}

/// A row (or a record) that does not fit the other side.
#[derive(Debug, thiserror::Error)]
#[error("file {id}: {problem}")]
pub(super) struct BadRow {
    pub(super) id: Uuid,
    pub(super) problem: String,
}

/// An event that cannot be written, or an outbox row that is not an event we can read.
#[derive(Debug, thiserror::Error)]
#[error("outbox event {event_id}: {problem}")]
pub(super) struct BadEvent {
    pub(super) event_id: Uuid,
    pub(super) problem: String,
}

/// What went wrong in [`PostgresStore::run`](super::PostgresStore::run).
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    #[error("no database connection within {waited:?}{}", last_attempt(.last_connect_error))]
    Checkout {
        #[source]
        error: bb8::RunError<ConnectError>,
        waited: Duration,
        last_connect_error: Option<String>,
    },
    #[error("query failed")]
    Query {
        #[source]
        error: DieselError,
        connection_lost: bool,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    BadRow(#[from] BadRow),
    #[error(transparent)]
    BadEvent(#[from] BadEvent),
}

fn last_attempt(error: &Option<String>) -> String {
    error
        .as_ref()
        .map(|e| format!(" (last attempt: {e})"))
        .unwrap_or_default()
}

/// A failure of operation `op`, as the port reports it.
#[derive(Debug, thiserror::Error)]
#[error("postgres {op}")]
struct CallError {
    op: &'static str,
    #[source]
    failure: Failure,
}

/// The one place that decides what is worth retrying later (the database is away) and what is
/// not (the database refused it, or holds something we cannot read).
pub(super) fn translate(op: &'static str, failure: Failure) -> PortError {
    let unavailable = match &failure {
        Failure::Checkout { .. } | Failure::Timeout(_) => true,
        Failure::Query {
            error:
                DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _),
            ..
        } => true,
        // An error that took the connection down with it (the server shutting down or
        // terminating the session: SQLSTATE 57P01 and kin) is the database being away.
        Failure::Query { connection_lost, .. } => *connection_lost,
        Failure::BadRow(_) | Failure::BadEvent(_) => false,
    };
    let error = CallError { op, failure };
    if unavailable {
        PortError::unavailable(error)
    } else {
        PortError::failed(error)
    }
}
