//! One module per subcommand; each turns parsed arguments into a result and an exit code.

mod build;
mod push;
mod stage;
mod status;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::exit::{Code, Failure};

pub async fn run(cli: Cli) -> Result<Code, Failure> {
    match &cli.command {
        Command::Build(args) => build::run(&cli.global, args).await,
        Command::Push(args) => push::run(&cli.global, args).await,
        Command::Status(args) => status::run(&cli.global, args).await,
    }
}

/// Loads the config named by the global options, with the registry override applied.
pub fn load_config(global: &crate::cli::Global) -> Result<Config, Failure> {
    Ok(Config::load(&global.config, global.registry.as_deref())?)
}

/// Writes a JSON document to stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| {
        Failure::new(
            Code::Infrastructure,
            format!("cannot encode JSON output: {e}"),
        )
    })?;
    println!("{text}");
    Ok(())
}
