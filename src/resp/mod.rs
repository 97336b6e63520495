//! RESP2/RESP3: the request parser and the reply writer. Knows nothing of commands.

pub mod parser;
pub mod writer;

pub use parser::{Parser, ProtocolError};
pub use writer::Reply;
