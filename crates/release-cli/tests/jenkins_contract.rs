//! The Jenkins contract: every `release …` invocation written in the `Jenkinsfile`, the
//! promote pipeline and the shared library (`jenkins/vars/`) parses with the CLI's own
//! argument parser, and every library step call in a Jenkinsfile passes only parameters the
//! step reads. A renamed or removed flag fails here, not in a production run.
//!
//! Invocations are the single-quoted Groovy literals holding `"$RELEASE_BIN"`; their shell
//! variables are replaced by sample values before parsing (an unknown variable fails the
//! test, so a new one gets a sample on purpose).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use clap::Parser;
use release_cli::cli::Cli;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Jenkinsfiles and library steps, as (path relative to the repository, text).
fn sources() -> Vec<(String, String)> {
    let root = repo();
    let mut files = vec![
        root.join("Jenkinsfile"),
        root.join("jenkins/pipelines/promote.Jenkinsfile"),
    ];
    let mut vars: Vec<PathBuf> = std::fs::read_dir(root.join("jenkins/vars"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "groovy"))
        .collect();
    vars.sort();
    files.extend(vars);
    files
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let rel = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            (rel, text)
        })
        .collect()
}

/// A Groovy string literal: its quote (`'`, `'''`, `"`, `"""`), its text with escapes
/// resolved, and the line it starts on.
#[derive(Debug)]
struct Literal {
    quote: &'static str,
    text: String,
    line: usize,
}

/// Groovy string literals outside comments. Slashy strings are left alone: the files use
/// them only for regular expressions.
fn literals(source: &str) -> Vec<Literal> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let starts = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    while i < chars.len() {
        if starts(i, "//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if starts(i, "/*") {
            i += 2;
            while i < chars.len() && !starts(i, "*/") {
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            i += 2;
            continue;
        }
        let quote = ["'''", "\"\"\"", "'", "\""]
            .into_iter()
            .find(|q| starts(i, q));
        let Some(quote) = quote else {
            line += usize::from(chars[i] == '\n');
            i += 1;
            continue;
        };
        let start_line = line;
        i += quote.len();
        let mut text = String::new();
        while i < chars.len() && !starts(i, quote) {
            if chars[i] == '\\' && i + 1 < chars.len() {
                let escaped = chars[i + 1];
                match escaped {
                    'n' => text.push('\n'),
                    't' => text.push('\t'),
                    '\n' => line += 1, // a Groovy line continuation inside the literal
                    c => text.push(c),
                }
                i += 2;
                continue;
            }
            line += usize::from(chars[i] == '\n');
            text.push(chars[i]);
            i += 1;
        }
        i += quote.len();
        out.push(Literal {
            quote,
            text,
            line: start_line,
        });
    }
    out
}

/// Sample values for the shell variables the invocations use.
fn sample(variable: &str) -> Option<Vec<&'static str>> {
    Some(match variable {
        "RELEASE_BIN" => vec!["release"],
        "RELEASE_VERSION" => vec!["1.4.0-b42"],
        "RELEASE_ENV" => vec!["prod"],
        "RELEASE_JUNIT" => vec!["release-reports/report.xml"],
        "RELEASE_APPROVER" => vec!["alice"],
        "RELEASE_TIMEOUT" => vec!["3m"],
        "RELEASE_EXPECT_HEAD" => {
            vec!["sha256:0000000000000000000000000000000000000000000000000000000000000000"]
        }
        // The `--service S` list the build and push steps assemble with `set --`.
        "@" => vec!["--service", "api", "--service", "worker"],
        _ => return None,
    })
}

/// Shell words of one command line, variables substituted, redirections dropped; stops at
/// `|`, `;` and `&&`.
fn words(command: &str) -> Result<Vec<String>, String> {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (_, '$') => {
                let braced = chars.peek() == Some(&'{');
                if braced {
                    chars.next();
                }
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' || (name.is_empty() && n == '@') {
                        name.push(n);
                        chars.next();
                        if name == "@" {
                            break;
                        }
                    } else {
                        break;
                    }
                }
                if braced && chars.next() != Some('}') {
                    return Err(format!("unsupported expansion ${{{name}…}}"));
                }
                let values = sample(&name).ok_or_else(|| format!("no sample value for ${name}"))?;
                if values.len() == 1 {
                    word.push_str(values[0]);
                    in_word = true;
                } else {
                    // "$@": one word per element, like the shell.
                    if !word.is_empty() {
                        return Err(format!("${name} is glued to `{word}`"));
                    }
                    words.extend(values.iter().map(|v| (*v).to_owned()));
                    in_word = false;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '|' | ';') => break,
            (None, '&') if chars.peek() == Some(&'&') => break,
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".to_owned());
    }
    if in_word {
        words.push(word);
    }
    // Redirections (`>file`, `2>&1`, `> file`) are the shell's, not the command's.
    let mut kept = Vec::new();
    let mut skip_next = false;
    for w in words {
        if skip_next {
            skip_next = false;
        } else if w == ">" || w == ">>" || w == "<" || w == "2>" {
            skip_next = true;
        } else if !(w.starts_with('>') || w.starts_with('<') || w.starts_with("2>")) {
            kept.push(w);
        }
    }
    Ok(kept)
}

/// Every `"$RELEASE_BIN" …` command line: (where, the command line as written).
fn invocations() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, text) in sources() {
        for lit in literals(&text) {
            if !lit.text.contains("$RELEASE_BIN") {
                continue;
            }
            for (k, l) in lit.text.replace("\\\n", " ").lines().enumerate() {
                if let Some(at) = l.find("\"$RELEASE_BIN\"") {
                    found.push((
                        format!("{path}:{}", lit.line + k),
                        l[at..].trim().to_owned(),
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn every_release_invocation_parses_with_the_cli_parser() {
    let invocations = invocations();
    let mut failures = Vec::new();
    for (at, command) in &invocations {
        let argv = match words(command) {
            Ok(argv) => argv,
            Err(e) => {
                failures.push(format!("{at}: `{command}`: {e}"));
                continue;
            }
        };
        match Cli::try_parse_from(&argv) {
            Ok(cli) => {
                // The values must land in the parsed command, not be swallowed elsewhere.
                let parsed = format!("{cli:?}");
                let lowercase = parsed.to_lowercase();
                for value in argv.iter().skip(1).filter(|w| !w.starts_with('-')) {
                    if !lowercase.contains(&value.to_lowercase()) {
                        failures.push(format!("{at}: `{command}`: `{value}` is not in {parsed}"));
                    }
                }
            }
            Err(e) => failures.push(format!(
                "{at}: `{command}` does not parse as {argv:?}:\n{}",
                e.render()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // Not vacuous: each stage's command is found.
    for command in ["build", "push", "deploy", "check", "promote", "audit"] {
        assert!(
            invocations.iter().any(|(_, c)| words(c).is_ok_and(|w| w
                .get(1)
                .is_some_and(|s| s == command)
                || (w.get(1).is_some_and(|s| s == "--json")
                    && w.get(2).is_some_and(|s| s == command)))),
            "no `release {command}` invocation found in the Jenkins sources; found: {invocations:#?}"
        );
    }
}

#[test]
fn invocations_are_single_quoted_so_groovy_interpolates_nothing() {
    let mut failures = Vec::new();
    for (path, text) in sources() {
        for lit in literals(&text) {
            let interpolating = lit.quote.starts_with('"');
            if interpolating
                && (lit.text.contains("$RELEASE_BIN") || lit.text.contains("${RELEASE_BIN"))
            {
                failures.push(format!(
                    "{path}:{}: a {} string runs `release`: Groovy would interpolate it; use single quotes",
                    lit.line, lit.quote
                ));
            }
            if interpolating && lit.text.contains("PASSWORD") {
                failures.push(format!("{path}:{}: a GString names a password", lit.line));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_renamed_flag_fails_the_contract() {
    // What the contract catches: the parser rejects a flag it does not define.
    for command in [
        r#""$RELEASE_BIN" deploy --environment "$RELEASE_ENV" --version "$RELEASE_VERSION""#,
        r#""$RELEASE_BIN" audit verify --expected-head "$RELEASE_EXPECT_HEAD""#,
    ] {
        let argv = words(command).unwrap();
        assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?} parsed");
    }
    assert_eq!(
        words(r#""$RELEASE_BIN" --json audit --env "$RELEASE_ENV" >"out-$RELEASE_ENV.json""#)
            .unwrap(),
        ["release", "--json", "audit", "--env", "prod"]
    );
    assert_eq!(
        words(r#""$RELEASE_BIN" build --version "$RELEASE_VERSION" "$@""#).unwrap(),
        [
            "release",
            "build",
            "--version",
            "1.4.0-b42",
            "--service",
            "api",
            "--service",
            "worker"
        ]
    );
}

/// `releaseX(key: value, …)` calls in the Jenkinsfiles use only keys `vars/releaseX.groovy`
/// reads as `args.key`.
#[test]
fn jenkinsfiles_pass_library_steps_only_parameters_they_read() {
    let call = regex::Regex::new(r"\b(release[A-Z][A-Za-z]*)\(([^()]*)\)").unwrap();
    let key = regex::Regex::new(r"(?:^|,)\s*([A-Za-z]+)\s*:").unwrap();
    let mut failures = Vec::new();
    let mut calls = 0;
    for (path, text) in sources()
        .into_iter()
        .filter(|(p, _)| p.ends_with("Jenkinsfile"))
    {
        for c in call.captures_iter(&text) {
            let step = &c[1];
            let var = repo().join(format!("jenkins/vars/{step}.groovy"));
            let Ok(source) = std::fs::read_to_string(&var) else {
                failures.push(format!("{path}: {step}: no jenkins/vars/{step}.groovy"));
                continue;
            };
            calls += 1;
            for k in key.captures_iter(&c[2]) {
                if !source.contains(&format!("args.{}", &k[1])) {
                    failures.push(format!(
                        "{path}: {step}({}): `{}` is not read by {step}",
                        &c[2], &k[1]
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        calls >= 10,
        "only {calls} library step calls found in the Jenkinsfiles"
    );
}
