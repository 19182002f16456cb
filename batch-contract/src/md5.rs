//! Hex MD5 digests, as completion-report and inventory manifests write them.

use md5::{Digest, Md5};

/// The hasher, for a file hashed as it streams by.
pub use md5::Md5 as Hasher;

/// Hex MD5 of `bytes`, as report and inventory manifests write it.
pub fn md5_hex(bytes: &[u8]) -> String {
    let mut hasher = Md5::new();
    hasher.update(bytes);
    finish_md5_hex(hasher)
}

/// Hex MD5 of what `hasher` was fed (a file hashed as it streamed by).
pub fn finish_md5_hex(hasher: Md5) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A writer that hashes what passes through it, so a file's MD5 is known when it is written.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Md5,
    written: u64,
}

impl<W: std::io::Write> HashingWriter<W> {
    /// Hashes what is written to `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Md5::new(),
            written: 0,
        }
    }

    /// The writer, the hex MD5 and the byte count of what went through.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, finish_md5_hex(self.hasher), self.written)
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_hashing_writer_gives_the_digest_of_what_it_wrote() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (bytes, md5, n) = w.finish();
        assert_eq!(bytes, b"hello world");
        assert_eq!(md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(n, 11);
    }
}
