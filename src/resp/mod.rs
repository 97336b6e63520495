//! RESP2/RESP3: the request parser and the reply writer. Knows nothing of commands.

pub mod parser;
pub mod writer;

pub use parser::{Parser, ProtocolError};

/// Appends one command as a RESP array of bulk strings (what a client, or a master feeding
/// its replicas, sends).
pub fn encode_command<'a>(out: &mut Vec<u8>, args: impl IntoIterator<Item = &'a [u8]> + Clone) {
    let n = args.clone().into_iter().count();
    out.extend_from_slice(format!("*{n}\r\n").as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}
pub use writer::Reply;
