//! What each stage of the release pipeline does, in which order, and what it records.
//!
//! The `release` command parses its flags, builds a [`Stage`] (the config, the state
//! directory, who acts, where progress goes), calls one function here and renders what it
//! returns. The decisions are made here, over the libraries beneath: `config` (what the
//! project declares), `engine` (what the engines do), `verify` (records, ledger, checks,
//! gate) and `registry-client`.
//!
//! - [`deploy`]: a deploy, rollback or promotion of one environment, Swarm or Compose, in
//!   place or blue-green; [`deploy::retire`] for the standby colour.
//! - [`checks`]: an environment's declared checks, typed and aimed.
//! - [`live`]: which project or stack serves an environment now.
//!
//! Errors are one [`Error`] with a [`Kind`]; the command maps the kind to its exit code.
//! Messages and hints speak in the commands' terms (`release status --env E`), which are
//! this crate's users' terms.

pub mod audit;
pub mod build;
pub mod checks;
pub mod deploy;
mod error;
pub mod evidence;
pub mod live;
pub mod promote;
pub mod push;
pub mod stage;
pub mod status;

pub use error::{Error, Kind, Setting};
pub use stage::Stage;
