//! Exit codes (docs/design.md §5) and the one error type that carries them.
//! Every fallible function of the library returns `Error`, built where the
//! cause is known (bad input, a refusal, semprep's own fault); the exit code
//! follows from it in one place, `finish`, which applies the hook policy.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Nothing to do, or fixed.
    Ready = 0,
    /// semprep's own failure (0 in hook mode unless --strict).
    Failure = 1,
    /// Bad usage or input; nothing was changed.
    Usage = 2,
    /// Headroom is still short and semprep may not or cannot fix it.
    Short = 3,
    /// Refused: the daemon is alive, or the lock is busy.
    Refused = 4,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
    pub(crate) fn failure(message: impl Into<String>) -> Self {
        Self::new(Code::Failure, message)
    }
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self::new(Code::Refused, message)
    }
    /// The same error, its message prefixed with what was being done.
    pub(crate) fn context(self, what: impl fmt::Display) -> Self {
        Error {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }
}

impl std::error::Error for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
