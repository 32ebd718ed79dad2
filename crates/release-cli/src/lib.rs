//! The `release` command line as a library: config, clap commands and output.
//! It parses, wires and prints; decisions live in `verify`, wire protocols in
//! `registry-client` and `engine`.

pub mod cli;
pub mod commands;
pub mod exit;
pub mod junit;
pub mod progress;
pub mod registry;
pub mod terminal;
pub mod terms;
