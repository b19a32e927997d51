//! What `supervisor logs` prints of a service's output: control characters
//! escaped, so that a service cannot drive the operator's terminal (move the
//! cursor, rewrite earlier lines, set the window title, answer-back
//! sequences). Like journalctl, which shows such messages only with `--all`,
//! this holds whatever stdout is (a terminal, a pipe into `less -R`, a file);
//! `supervisor logs --raw` prints the bytes as written.

use std::io::{self, Write};

/// A writer that passes text on with every byte of a control character
/// (C0 other than tab and newline, DEL, and the C1 controls U+0080..U+009F)
/// and of invalid UTF-8 written as `\xNN`.
pub struct Escaped<W: Write> {
    inner: W,
    /// The start of a UTF-8 sequence that the next write may complete.
    pending: Vec<u8>,
}

impl<W: Write> Escaped<W> {
    pub fn new(inner: W) -> Self {
        Escaped {
            inner,
            pending: Vec::new(),
        }
    }
}

impl<W: Write> Write for Escaped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let (out, rest) = escape(&self.pending, false);
        self.inner.write_all(&out)?;
        self.pending.drain(..self.pending.len() - rest);
        Ok(buf.len())
    }

    /// Flushing ends the text: an incomplete sequence left is escaped.
    fn flush(&mut self) -> io::Result<()> {
        let (out, _) = escape(&self.pending, true);
        self.pending.clear();
        self.inner.write_all(&out)?;
        self.inner.flush()
    }
}

/// Escapes `bytes`; returns the text and how many bytes at the end were held
/// back as the start of an incomplete UTF-8 sequence (none when `at_end`).
fn escape(bytes: &[u8], at_end: bool) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(text) => (text, None),
            Err(err) => (
                std::str::from_utf8(&rest[..err.valid_up_to()]).unwrap_or_default(),
                Some(err),
            ),
        };
        for ch in valid.chars() {
            if is_control(ch) {
                let mut buf = [0u8; 4];
                for byte in ch.encode_utf8(&mut buf).bytes() {
                    hex(&mut out, byte);
                }
            } else {
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
        }
        let Some(err) = bad else { return (out, 0) };
        let after = &rest[err.valid_up_to()..];
        match err.error_len() {
            Some(len) => {
                for &byte in &after[..len] {
                    hex(&mut out, byte);
                }
                rest = &after[len..];
            }
            // Cut short by the end of the buffer.
            None if !at_end => return (out, after.len()),
            None => {
                for &byte in after {
                    hex(&mut out, byte);
                }
                return (out, 0);
            }
        }
    }
}

fn is_control(ch: char) -> bool {
    ch.is_control() && ch != '\t' && ch != '\n'
}

fn hex(out: &mut Vec<u8>, byte: u8) {
    out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(chunks: &[&[u8]]) -> String {
        let mut out = Escaped::new(Vec::new());
        for chunk in chunks {
            out.write_all(chunk).unwrap();
        }
        out.flush().unwrap();
        String::from_utf8(out.inner).unwrap()
    }

    #[test]
    fn control_characters_are_escaped_text_is_not() {
        assert_eq!(
            escaped(&[b"a\x1b[2J\tb\r\x07\x7f\n"]),
            "a\\x1b[2J\tb\\x0d\\x07\\x7f\n"
        );
        assert_eq!(
            escaped(&["é ✓ \u{9b}31m\n".as_bytes()]),
            "é ✓ \\xc2\\x9b31m\n"
        );
        assert_eq!(escaped(&[b"\xff\xfe ok\n"]), "\\xff\\xfe ok\n");
    }

    #[test]
    fn a_character_split_across_writes_is_whole() {
        let check = "✓".as_bytes();
        assert_eq!(escaped(&[&check[..1], &check[1..], b"\n"]), "✓\n");
        // Cut short at the very end: escaped, not lost.
        assert_eq!(escaped(&[&check[..2]]), "\\xe2\\x9c");
    }
}
