//! Why a job was refused.

use manifold_core::error::ErrorKind;

/// Why [`super::Scheduler::add`] refused a job; each names the job and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The name is empty or longer than the job-runs table's column.
    #[error("scheduled job name {name:?} is not valid: use 1 to 255 characters")]
    BadName {
        /// The name given.
        name: String,
    },
    /// The cron expression does not parse, or never matches a time.
    #[error("scheduled job {name:?}: bad cron expression {expression:?}: {reason}")]
    BadCron {
        /// The job's name.
        name: String,
        /// The expression given.
        expression: String,
        /// What the parser said.
        reason: String,
    },
    /// The time zone is not an IANA name.
    #[error(
        "scheduled job {name:?}: unknown time zone {zone:?} (use an IANA name such as \
         Europe/Paris, or UTC)"
    )]
    UnknownTimeZone {
        /// The job's name.
        name: String,
        /// The zone given.
        zone: String,
    },
    /// A job of that name is already registered.
    #[error("a scheduled job named {name:?} already exists; job names must be unique")]
    Duplicate {
        /// The name given.
        name: String,
    },
}

impl From<SchedulerError> for manifold_core::Error {
    fn from(e: SchedulerError) -> Self {
        let kind = match &e {
            SchedulerError::Duplicate { .. } => ErrorKind::Conflict,
            SchedulerError::BadName { .. }
            | SchedulerError::BadCron { .. }
            | SchedulerError::UnknownTimeZone { .. } => ErrorKind::BadRequest,
        };
        manifold_core::Error::new(kind, e.to_string())
    }
}
