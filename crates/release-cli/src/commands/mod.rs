//! One module per subcommand; each turns parsed arguments into a result and an exit code.

mod audit;
mod audit_verify;
mod build;
mod check;
mod deploy;
mod image;
mod keys;
mod promote;
mod push;
mod rollback;
mod stage;
mod status;
mod verify_image;

use crate::cli::{Cli, Command};
use crate::exit::{Code, Failure};
use config::Config;

pub async fn run(cli: Cli) -> Result<Code, Failure> {
    match &cli.command {
        Command::Build(args) => build::run(&cli.global, args).await,
        Command::Push(args) => push::run(&cli.global, args).await,
        Command::Deploy(args) => deploy::run(&cli.global, args).await,
        Command::Rollback(args) => rollback::run(&cli.global, args).await,
        Command::Retire(args) => rollback::retire(&cli.global, args).await,
        Command::Check(args) => check::run(&cli.global, args).await,
        Command::Status(args) => status::run(&cli.global, args).await,
        Command::Image(args) => image::run(&cli.global, args).await,
        Command::Audit(args) => audit::run(&cli.global, args).await,
        Command::Promote(args) => promote::run(&cli.global, args).await,
    }
}

/// Loads the config named by the global options, with the registry override applied.
/// The variables it names for signing keys are kept from every child process, as the
/// `RELEASE_*` ones are.
pub fn load_config(global: &crate::cli::Global) -> Result<Config, Failure> {
    let config = Config::load(&global.config, global.registry.as_deref())?;
    let blocks = config
        .environments
        .values()
        .filter_map(|e| e.evidence.as_ref())
        .chain(config.ledger.as_ref());
    for var in blocks.filter_map(|b| b.signing_key_env.as_deref()) {
        engine::keep_from_children(var);
    }
    Ok(config)
}

/// Connects to the engine environment `env` names (see [`Config::endpoint`]); a failure
/// names the environment, the endpoint and the cause. Connecting sends nothing but the
/// version request, so a failure here has changed nothing.
///
/// A Compose environment is refused here: what reads Swarm services cannot read a Compose
/// project. Commands that serve both connect with [`connect_compose_env`] or read through
/// `pipeline::live::live_images`.
pub async fn connect_env(config: &Config, env: &str) -> Result<engine::Engine, Failure> {
    if config
        .environment(env)
        .is_ok_and(|e| e.orchestrator == config::Orchestrator::Compose)
    {
        return Err(pipeline::Error::usage(format!(
            "environment `{env}` is a Compose environment (orchestrator = \"compose\"): this step reads Swarm services, not a Compose project"
        ))
        .with_hint("see docs/compose.md, \"Not done yet\"").into());
    }
    connect_compose_env(config, env).await
}

/// Connects to the engine of environment `env`, whatever its orchestrator
/// ([`pipeline::stage::connect`]).
pub async fn connect_compose_env(config: &Config, env: &str) -> Result<engine::Engine, Failure> {
    Ok(pipeline::stage::connect(config, env).await?)
}

/// Connects to the engine of this process's environment (`DOCKER_HOST`, `DOCKER_CONTEXT`,
/// the CLI's current context, else the local socket): the agent's own engine, which
/// builds and pushes.
pub async fn connect_local() -> Result<engine::Engine, Failure> {
    let endpoint = engine::Endpoint::from_env()?;
    Ok(engine::Engine::connect(&endpoint).await?)
}

/// Writes a JSON document to stdout: a command's one document under `--json`. A command
/// that fails after printing it returns its failure [`Failure::reported`], so that `main`
/// prints no second one.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| pipeline::Error::infrastructure(format!("cannot encode JSON output: {e}")))?;
    println!("{text}");
    Ok(())
}

/// A command's report: its `--json` document, else its rendering for people on stdout.
pub fn show<T: serde::Serialize>(
    global: &crate::cli::Global,
    report: &T,
    render: impl FnOnce(&T) -> String,
) -> Result<(), Failure> {
    if global.json {
        return print_json(report);
    }
    print!("{}", render(report));
    Ok(())
}

/// A table's header row, for [`render_table`].
pub fn header(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| (*c).to_owned()).collect()
}

/// Aligns rows into columns separated by two spaces, by display width (a CJK character
/// takes two columns); the first row is the header.
pub fn render_table(rows: &[Vec<String>]) -> String {
    use unicode_width::UnicodeWidthStr as _;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w.saturating_sub(cell.width()))))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render_table;

    #[test]
    fn columns_align_by_display_width() {
        let rows = vec![
            vec!["SERVICE".to_owned(), "STATE".to_owned()],
            vec!["服务".to_owned(), "running".to_owned()],
            vec!["api".to_owned(), "running".to_owned()],
        ];
        let out = render_table(&rows);
        // The second column starts at the same terminal column in every row: "服务" takes
        // four columns, not two characters' worth.
        assert_eq!(out.lines().nth(1).unwrap(), "服务     running");
        assert_eq!(out.lines().nth(2).unwrap(), "api      running");
    }
}
