//! Transcodes Amazon Connect call recordings (PCM WAV) to G.711 A-law (or FLAC, or Opus) for S3
//! Batch Operations.
//!
//! The life of one task:
//! 1. [`batch_contract::event::parse`] reads the invocation (schema 1.0 or 2.0) and decodes the key;
//! 2. [`settings::Settings`] (environment, then the job's `userArguments`) say what to produce;
//! 3. [`task::run`] GETs the object, pinned to its version, and skips it when already converted
//!    (our tag or metadata, or a G.711 header);
//! 4. [`wav`] reads the header from the body stream: the output length is now known;
//! 5. [`transcode`] downmixes and [`g711`]-encodes the rest while one streaming PUT uploads it,
//!    with `If-Match` on the ETag read, the target storage class, tags, metadata and SSE-KMS key;
//!    (`codec=flac`, `codec=opus`, and G.711 from a rate other than 8 kHz: [`encode`] reduces the
//!    audio to PCM16, [`resample`]s it when the output needs another rate, and encodes it with
//!    [`flac`], [`opus`] or [`g711`] into a spool file, then one PUT of it; [`decode`] turns any
//!    output back into PCM);
//! 6. [`outcome`] turns whatever happened into Succeeded / TemporaryFailure / PermanentFailure;
//! 7. [`handler::Handler`] answers every task of the invocation, before the Lambda deadline.

pub mod client;
pub mod decode;
pub mod encode;
pub mod file;
pub mod flac;
pub mod g711;
pub mod handler;
pub mod opus;
pub mod outcome;
pub mod resample;
pub mod settings;
pub mod task;
pub mod transcode;
pub mod upload;
pub mod wav;

pub use g711::Codec;
pub use handler::Handler;
pub use settings::Settings;
pub use transcode::{Downmix, Options};
