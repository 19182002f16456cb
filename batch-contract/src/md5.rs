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
