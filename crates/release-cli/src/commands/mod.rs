//! One module per subcommand; each turns parsed arguments into a result and an exit code.

mod audit;
mod build;
mod check;
mod deploy;
mod evidence;
mod image;
mod promote;
mod push;
mod rollback;
mod stage;
mod status;
mod verify_image;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::exit::{Code, Failure};

pub async fn run(cli: Cli) -> Result<Code, Failure> {
    match &cli.command {
        Command::Build(args) => build::run(&cli.global, args).await,
        Command::Push(args) => push::run(&cli.global, args).await,
        Command::Deploy(args) => deploy::run(&cli.global, args).await,
        Command::Rollback(args) => rollback::run(&cli.global, args).await,
        Command::Check(args) => check::run(&cli.global, args).await,
        Command::Status(args) => status::run(&cli.global, args).await,
        Command::Image(args) => image::run(&cli.global, args).await,
        Command::Audit(args) => audit::run(&cli.global, args).await,
        Command::Promote(args) => promote::run(&cli.global, args).await,
    }
}

/// Loads the config named by the global options, with the registry override applied.
pub fn load_config(global: &crate::cli::Global) -> Result<Config, Failure> {
    Ok(Config::load(&global.config, global.registry.as_deref())?)
}

/// Connects to the engine environment `env` names (see [`Config::endpoint`]); a failure
/// names the environment, the endpoint and the cause. Connecting sends nothing but the
/// version request, so a failure here has changed nothing.
///
/// A Compose environment is refused here: the commands that read an environment's live
/// state (`status`, `audit --live`, the promotion gate's source) read Swarm services, and
/// do not read Compose projects yet. `release deploy` and `release rollback` connect to a
/// Compose environment with [`connect_compose_env`].
pub async fn connect_env(config: &Config, env: &str) -> Result<engine::Engine, Failure> {
    if config
        .environment(env)
        .is_ok_and(|e| e.orchestrator == crate::config::Orchestrator::Compose)
    {
        return Err(Failure::usage(format!(
            "environment `{env}` is a Compose environment (orchestrator = \"compose\"): only `release deploy` and `release rollback` support Compose environments yet"
        ))
        .with_hint("see docs/compose.md, \"Not done yet\""));
    }
    connect_compose_env(config, env).await
}

/// Connects to the engine of environment `env`, whatever its orchestrator.
pub async fn connect_compose_env(config: &Config, env: &str) -> Result<engine::Engine, Failure> {
    let endpoint = config.endpoint(env)?;
    engine::Engine::connect(&endpoint)
        .await
        .map_err(|e| Failure::from(e).with_env(env))
}

/// Connects to the engine of this process's environment (`DOCKER_HOST`, `DOCKER_CONTEXT`,
/// the CLI's current context, else the local socket): the agent's own engine, which
/// builds and pushes.
pub async fn connect_local() -> Result<engine::Engine, Failure> {
    let endpoint = engine::Endpoint::from_env()?;
    Ok(engine::Engine::connect(&endpoint).await?)
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
    JSON_PRINTED.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

static JSON_PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process already printed its `--json` document (a failing command may print
/// its report first, e.g. a deploy that rolled back).
pub fn json_printed() -> bool {
    JSON_PRINTED.load(std::sync::atomic::Ordering::Relaxed)
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
