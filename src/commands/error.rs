//! Every error reply a command can produce, with Redis 7.0's exact text, written in one place.

use std::fmt;

use crate::store::NotLocked;

#[derive(Debug, Clone, PartialEq)]
pub enum CmdError {
    Syntax,
    NotInteger,
    NotFloat,
    WrongType,
    /// A string that is not a HyperLogLog given to a PF* command.
    NotHll,
    /// A HyperLogLog whose sparse encoding does not add up.
    CorruptHll,
    NoSuchKey,
    Overflow,
    DbIndexOutOfRange,
    /// `invalid expire time in '<cmd>' command`
    InvalidExpire(&'static str),
    /// `wrong number of arguments for '<cmd>' command`
    Arity(String),
    NoAuth,
    WrongPass,
    Oom,
    /// A key the command table did not declare: a bug in our table, not the client's fault.
    NotLocked,
    /// Any other message, complete with its code (`ERR ...`, `NOPROTO ...`).
    Msg(String),
    /// A message already counted in the error statistics where it happened (a script's
    /// `redis.call` that failed): the reply fails the command without counting it again.
    Counted(String),
}

impl CmdError {
    /// An `ERR` error with the given text.
    pub fn err(text: impl Into<String>) -> CmdError {
        CmdError::Msg(format!("ERR {}", text.into()))
    }
}

impl From<NotLocked> for CmdError {
    fn from(_: NotLocked) -> Self {
        CmdError::NotLocked
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::Syntax => f.write_str("ERR syntax error"),
            CmdError::NotInteger => f.write_str("ERR value is not an integer or out of range"),
            CmdError::NotFloat => f.write_str("ERR value is not a valid float"),
            CmdError::WrongType => {
                f.write_str("WRONGTYPE Operation against a key holding the wrong kind of value")
            }
            CmdError::NotHll => {
                f.write_str("WRONGTYPE Key is not a valid HyperLogLog string value.")
            }
            CmdError::CorruptHll => f.write_str("INVALIDOBJ Corrupted HLL object detected"),
            CmdError::NoSuchKey => f.write_str("ERR no such key"),
            CmdError::Overflow => f.write_str("ERR increment or decrement would overflow"),
            CmdError::DbIndexOutOfRange => f.write_str("ERR DB index is out of range"),
            CmdError::InvalidExpire(cmd) => write!(f, "ERR invalid expire time in '{cmd}' command"),
            CmdError::Arity(cmd) => write!(f, "ERR wrong number of arguments for '{cmd}' command"),
            CmdError::NoAuth => f.write_str("NOAUTH Authentication required."),
            CmdError::WrongPass => {
                f.write_str("WRONGPASS invalid username-password pair or user is disabled.")
            }
            CmdError::Oom => f.write_str("OOM command not allowed when used memory > 'maxmemory'."),
            CmdError::NotLocked => f.write_str("ERR internal error: key not declared by command"),
            CmdError::Msg(m) | CmdError::Counted(m) => f.write_str(m),
        }
    }
}

pub type CmdResult = Result<(), CmdError>;
