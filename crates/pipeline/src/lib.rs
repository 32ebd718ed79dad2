//! What each stage of the release pipeline does, in which order, and what it records.
//!
//! The `release` command parses its flags, builds a [`Stage`] (the config, the state
//! directory, who acts, where progress goes), calls one function here and renders what it
//! returns. The decisions are made here, over the libraries beneath: `config` (what the
//! project declares), `engine` (what the engines do), `verify` (records, ledger, checks,
//! gate) and `registry-client`.
//!
//! - [`build`] and [`push`]: what is built, pushed and recorded as a release.
//! - [`deploy`]: a deploy, rollback or promotion of one environment, Swarm or Compose, in
//!   place or blue-green; [`deploy::retire`] for the standby colour.
//! - [`checks`]: an environment's declared checks, typed, aimed, recorded and signed.
//! - [`promote`]: the promotion gate, a refusal, and the signed summary of a passed gate.
//! - [`evidence`] and [`image_evidence`]: signed evidence and release manifests in the
//!   registry, and what an auditor reads of one image.
//! - [`audit`]: the history, and `--live`'s comparison with what runs.
//! - [`live`] and [`status`]: which project or stack serves an environment now, and what
//!   it shows and flags.
//!
//! Errors are one [`Error`] with a [`Kind`]; the command maps the kind to its exit code,
//! and words a hint's [`Setting`] as its own flag or variable.
//! Messages and hints speak in the commands' terms (`release status --env E`), which are
//! this crate's users' terms.

pub mod audit;
pub mod build;
pub mod checks;
pub mod deploy;
mod error;
pub mod evidence;
pub mod image_evidence;
pub mod live;
pub mod promote;
pub mod push;
pub mod stage;
pub mod status;

pub use error::{Error, Kind, Setting};
pub use stage::Stage;
