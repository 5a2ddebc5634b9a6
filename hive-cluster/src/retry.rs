//! What a failed attempt to run an operation on its primary means for the
//! client: run it again, or report whether it surely did not run
//! (`Unavailable`, safe to retry) or may have run (`Indeterminate`, not to be
//! retried blindly: an `INCR` retried after it ran counts twice). Pure, so the
//! rule is one table test (spec: cluster.md G1).

use hive_transport::{ErrorKind, RemoteError};

use crate::batcher::BatchError;

/// What to do after one failed attempt to forward an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The operation surely did not run (never sent, refused before running,
    /// or a read): try again with a fresher view until the deadline, then
    /// report `Unavailable`.
    Retry,
    /// A read ran but its reply did not fit in the response: send it again at
    /// once.
    Resend,
    /// A write may have run (sent, answer lost): report `Indeterminate`.
    MaybeRan,
    /// The primary answered with an error of its own: report it as is.
    Report,
}

/// Returns what to do after forwarding an operation (a write if `write`)
/// failed with `failure`.
pub(crate) fn after_forward(failure: &BatchError, write: bool) -> Next {
    match failure {
        // Never sent.
        BatchError::Unreachable(_) => Next::Retry,
        // Sent, answer lost (timeout, broken connection, garbled reply).
        BatchError::Failed(_) if write => Next::MaybeRan,
        BatchError::Failed(_) => Next::Retry,
        BatchError::Remote(err) => after_remote(err, write),
    }
}

/// [`after_forward`] for an error the primary (or its server) answered.
fn after_remote(err: &RemoteError, write: bool) -> Next {
    match err.kind {
        ErrorKind::Deferred => Next::Resend,
        // Refused before anything ran: not the primary in its view, leaving,
        // or unable to run it now (a moving key's state out of reach).
        ErrorKind::NotOwner | ErrorKind::Unavailable => Next::Retry,
        // A server past its shutdown grace cuts running handlers short.
        ErrorKind::ShuttingDown if write => Next::MaybeRan,
        ErrorKind::ShuttingDown => Next::Retry,
        ErrorKind::Indeterminate
        | ErrorKind::NotFound
        | ErrorKind::WrongType
        | ErrorKind::CapacityExceeded
        | ErrorKind::InvalidArgument
        | ErrorKind::InvalidValue
        | ErrorKind::Codec => Next::Report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(kind: ErrorKind) -> BatchError {
        BatchError::Remote(RemoteError::new(kind, ""))
    }

    #[test]
    fn a_write_is_run_again_only_when_it_surely_did_not_run() {
        let unreachable = BatchError::Unreachable(String::new());
        let lost = BatchError::Failed(String::new());
        // (failure, next for a read, next for a write)
        let table = [
            (unreachable, Next::Retry, Next::Retry),
            (lost, Next::Retry, Next::MaybeRan),
            (remote(ErrorKind::NotOwner), Next::Retry, Next::Retry),
            (remote(ErrorKind::Unavailable), Next::Retry, Next::Retry),
            (remote(ErrorKind::ShuttingDown), Next::Retry, Next::MaybeRan),
            (remote(ErrorKind::Deferred), Next::Resend, Next::Resend),
            (remote(ErrorKind::Indeterminate), Next::Report, Next::Report),
            (remote(ErrorKind::NotFound), Next::Report, Next::Report),
            (remote(ErrorKind::WrongType), Next::Report, Next::Report),
            (
                remote(ErrorKind::CapacityExceeded),
                Next::Report,
                Next::Report,
            ),
            (
                remote(ErrorKind::InvalidArgument),
                Next::Report,
                Next::Report,
            ),
            (remote(ErrorKind::InvalidValue), Next::Report, Next::Report),
            (remote(ErrorKind::Codec), Next::Report, Next::Report),
        ];
        assert_eq!(
            table.len(),
            ErrorKind::ALL.len() + 2,
            "every kind has its row"
        );
        for (failure, read, write) in table {
            assert_eq!(after_forward(&failure, false), read, "read: {failure:?}");
            assert_eq!(after_forward(&failure, true), write, "write: {failure:?}");
        }
    }
}
