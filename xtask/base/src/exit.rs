//! The exit codes of the command-line contract, carried through `anyhow` errors.
use std::fmt;

/// Why a command stopped; each kind has the documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A check failed or the operation failed.
    Failed = 1,
    /// Usage, configuration or input error; nothing was changed.
    Usage = 2,
    /// Another run holds the lock.
    Locked = 3,
    /// Refused as unsafe.
    Unsafe = 4,
    /// An earlier run was interrupted.
    Interrupted = 5,
}

impl Kind {
    /// Every kind, by exit code.
    pub const ALL: [Kind; 5] =
        [Kind::Failed, Kind::Usage, Kind::Locked, Kind::Unsafe, Kind::Interrupted];
}

/// An error that chooses its exit code (anything else exits 1), and the
/// command that goes on from it, when there is one: the error document's
/// `next` is this field, never words picked out of the message.
#[derive(Debug)]
pub struct Exit {
    pub kind: Kind,
    pub message: String,
    pub next: Option<String>,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

fn exit(kind: Kind, message: impl Into<String>) -> anyhow::Error {
    Exit { kind, message: message.into(), next: None }.into()
}

/// An error of `kind` whose message names `next`, the command to run from
/// there (built by the caller from the same value it put in the message).
pub fn with_next(kind: Kind, message: impl Into<String>, next: impl Into<String>) -> anyhow::Error {
    Exit { kind, message: message.into(), next: Some(next.into()) }.into()
}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    exit(Kind::Usage, message)
}

pub fn failed(message: impl Into<String>) -> anyhow::Error {
    exit(Kind::Failed, message)
}

pub fn locked(message: impl Into<String>) -> anyhow::Error {
    exit(Kind::Locked, message)
}

pub fn refused(message: impl Into<String>) -> anyhow::Error {
    exit(Kind::Unsafe, message)
}

pub fn interrupted(message: impl Into<String>) -> anyhow::Error {
    exit(Kind::Interrupted, message)
}

/// Why an error stopped the command: the first `Exit` in its chain decides;
/// an error without one is a failure.
pub fn kind_of(error: &anyhow::Error) -> Kind {
    first_exit(error).map_or(Kind::Failed, |exit| exit.kind)
}

/// The command the first `Exit` in the chain names as the way on.
pub fn next_of(error: &anyhow::Error) -> Option<&str> {
    first_exit(error).and_then(|exit| exit.next.as_deref())
}

fn first_exit(error: &anyhow::Error) -> Option<&Exit> {
    // `downcast_ref` sees an `Exit` given as context; the chain, one given
    // as the error that the contexts wrap.
    error
        .downcast_ref::<Exit>()
        .or_else(|| error.chain().find_map(|cause| cause.downcast_ref::<Exit>()))
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn the_first_exit_in_the_chain_decides() {
        let err = Err::<(), _>(refused("a link")).context("restore config").unwrap_err();
        assert_eq!(kind_of(&err), Kind::Unsafe);
        assert_eq!(kind_of(&anyhow::anyhow!("disk full")), Kind::Failed);
        let outer = Err::<(), _>(usage("bad flag")).context(Exit {
            kind: Kind::Locked,
            message: "held".into(),
            next: None,
        });
        assert_eq!(kind_of(&outer.unwrap_err()), Kind::Locked);
        let resumable =
            Err::<(), _>(with_next(Kind::Interrupted, "stopped", "go on")).context("roll back");
        assert_eq!(next_of(&resumable.unwrap_err()), Some("go on"));
        assert_eq!(next_of(&refused("a link")), None);
    }
}
