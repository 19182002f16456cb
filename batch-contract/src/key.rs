//! Manifest key encoding: one spelling for the manifests we write, every spelling S3 accepts read.
//!
//! S3 Batch Operations passes a manifest's key to the function exactly as the manifest spells it,
//! URL-encoded; the handler decodes it, the manifest writer encodes it. Both sides use this module.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Every byte outside `A-Z a-z 0-9 - . _ ~ /` is percent-encoded in manifests we write.
const KEY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Encodes a key for a manifest so that `unquote` and `unquote_plus` both give it back.
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_ENCODE_SET).to_string()
}

/// Per byte: written as it is in a key we encode (`A-Z a-z 0-9 - . _ ~ /`).
static LITERAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/');
        c += 1;
    }
    t
};

/// Per byte: its value as a hex digit, or 0xFF; `upper` leaves out `a-f` (our spelling).
const fn hex_table(upper_only: bool) -> [u8; 256] {
    let mut t = [0xFF; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'F' => b - b'A' + 10,
            b'a'..=b'f' if !upper_only => b - b'a' + 10,
            _ => 0xFF,
        };
        c += 1;
    }
    t
}
static HEX: [u8; 256] = hex_table(false);
static UPPER_HEX: [u8; 256] = hex_table(true);

/// Whether `raw` (a key that [`decode_key`] accepts) is exactly what [`encode_key`] writes for
/// it, so a manifest can copy it as it is instead of decoding and encoding it again.
pub fn is_encoded_as_written(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if LITERAL[c as usize] {
            i += 1;
            continue;
        }
        if c != b'%' || i + 2 >= b.len() {
            return false;
        }
        let (h, l) = (UPPER_HEX[b[i + 1] as usize], UPPER_HEX[b[i + 2] as usize]);
        // Not hex in our spelling, or a byte we would have written as it is.
        if h == 0xFF || l == 0xFF || LITERAL[(h * 16 + l) as usize] {
            return false;
        }
        i += 3;
    }
    !b.is_empty()
}

/// Why a key from an event could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// `%` not followed by two hex digits.
    #[error("key is not URL-encoded: '%' at byte {0} is not followed by two hex digits")]
    BadEscape(usize),
    /// Decoded bytes are not UTF-8.
    #[error("key does not decode to UTF-8 text")]
    NotUtf8,
    /// Empty key.
    #[error("key is empty")]
    Empty,
}

/// Form-decodes a key as S3 Batch Operations delivers it: `+` is a space, then `%XX` escapes.
///
/// This is Python's `unquote_plus`, which AWS's current examples use for both schema versions,
/// except that a malformed escape is an error here rather than passed through, so a key that was
/// never encoded fails with its reason instead of a confusing `NoSuchKey`.
pub fn decode_key(raw: &str) -> Result<String, KeyError> {
    if raw.is_empty() {
        return Err(KeyError::Empty);
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |at: usize| b.get(at).map_or(0xFF, |&c| HEX[c as usize]);
                match (hex(i + 1), hex(i + 2)) {
                    (h, l) if h != 0xFF && l != 0xFF => out.push(h * 16 + l),
                    _ => return Err(KeyError::BadEscape(i)),
                }
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| KeyError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_copied_only_when_it_is_written_the_way_we_write_it() {
        let keys = [
            "connect/i/CallRecordings/2024/01/26/id_20240126T03:07_UTC.wav",
            "a b+c%.wav",
            "AWS SKO 2015/Agenda.pdf",
            "récit/ünïcode 音声.wav",
            "~tilde/-dash_/x.y",
            "plain/key.wav",
        ];
        for key in keys {
            let ours = encode_key(key);
            assert!(is_encoded_as_written(&ours), "{ours}");
            assert_eq!(decode_key(&ours).unwrap(), key);
        }
        // Same key, other spellings: lower-case hex, '+' for a space, an escaped literal, a raw ':'.
        for other in [
            "a%3ab.wav",
            "a+b.wav",
            "a%2Db.wav",
            "a:b.wav",
            "a%3",
            "a%",
            "",
        ] {
            assert!(!is_encoded_as_written(other), "{other}");
        }
        assert!(is_encoded_as_written("a%3Ab.wav"));
    }

    #[test]
    fn f8_key_decoding() {
        let cases = [
            ("object%20key%20with%20spaces", "object key with spaces"),
            (
                "photos/jpgs/newjersey/objectkey5",
                "photos/jpgs/newjersey/objectkey5",
            ),
            ("AWS+SKO+2015/Agenda.pdf", "AWS SKO 2015/Agenda.pdf"),
            ("a%2Bb.wav", "a+b.wav"),
            (
                "connect/acme/CallRecordings/2024/01/26/e81b7b4d-20ac-472d-8aad-0d848ce7c9b4_20240126T03%3A07_UTC.wav",
                "connect/acme/CallRecordings/2024/01/26/e81b7b4d-20ac-472d-8aad-0d848ce7c9b4_20240126T03:07_UTC.wav",
            ),
            ("object1key%7Clower", "object1key|lower"),
            (
                "%7B%22origKey%22%3A%20%22object1key%22%2C%20%22newKey%22%3A%20%22newObject1Key%22%7D",
                "{\"origKey\": \"object1key\", \"newKey\": \"newObject1Key\"}",
            ),
            ("caf%C3%A9.wav", "café.wav"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_key(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn undecodable_keys_fail_with_a_reason() {
        assert_eq!(decode_key("a%zzb"), Err(KeyError::BadEscape(1)));
        assert_eq!(decode_key("trailing%4"), Err(KeyError::BadEscape(8)));
        assert_eq!(decode_key("bad%FFutf8"), Err(KeyError::NotUtf8));
        assert_eq!(decode_key(""), Err(KeyError::Empty));
    }

    #[test]
    fn encoding_round_trips_odd_keys_through_either_decoder() {
        let long = "x/".repeat(600);
        let keys = [
            "sp ace/ü+plus=eq&.wav",
            "pct%2Fenc,comma",
            "日本語/通話.wav",
            "T03:07_UTC.wav",
            long.as_str(),
        ];
        for k in keys {
            let enc = encode_key(k);
            assert!(
                enc.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)),
                "{enc}"
            );
            assert!(
                !enc.contains('+'),
                "no '+' survives, so unquote and unquote_plus agree"
            );
            assert_eq!(decode_key(&enc).unwrap(), k);
        }
        assert_eq!(encode_key("a b+c:d,e"), "a%20b%2Bc%3Ad%2Ce");
    }

    #[test]
    fn f9_manifest_keys_are_what_we_would_write() {
        assert_eq!(
            encode_key("object key with spaces"),
            "object%20key%20with%20spaces"
        );
        assert_eq!(
            encode_key("photos/jpgs/objectkey4"),
            "photos/jpgs/objectkey4"
        );
    }
}
