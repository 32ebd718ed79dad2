//! What stderr is: an interactive terminal a person watches, or a log (Jenkins, a pipe, a
//! file). Styles (colour, in-place redraws) go only to the first.

use std::io::IsTerminal as _;

/// Whether stderr may carry ANSI styles: it is a terminal, `NO_COLOR` is unset or empty
/// (<https://no-color.org>), and `TERM` is not `dumb`.
pub fn stderr_styled() -> bool {
    styled(std::io::stderr().is_terminal(), &|name| {
        std::env::var(name).ok()
    })
}

/// Whether progress may redraw rows in place on stderr: styles allowed, and not in CI
/// (`CI` or `JENKINS_URL` set), whose log viewers show every redraw as a new line.
pub fn stderr_live() -> bool {
    live(std::io::stderr().is_terminal(), &|name| {
        std::env::var(name).ok()
    })
}

fn styled(is_terminal: bool, var: &dyn Fn(&str) -> Option<String>) -> bool {
    is_terminal
        && var("NO_COLOR").is_none_or(|v| v.is_empty())
        && var("TERM").as_deref() != Some("dumb")
}

fn live(is_terminal: bool, var: &dyn Fn(&str) -> Option<String>) -> bool {
    styled(is_terminal, var) && var("CI").is_none() && var("JENKINS_URL").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn styles_only_on_a_terminal_without_no_color_or_a_dumb_term() {
        assert!(styled(true, &env(&[("TERM", "xterm-256color")])));
        assert!(!styled(false, &env(&[])), "a pipe or a Jenkins log");
        assert!(!styled(true, &env(&[("NO_COLOR", "1")])));
        assert!(
            styled(true, &env(&[("NO_COLOR", "")])),
            "empty NO_COLOR is unset"
        );
        assert!(!styled(true, &env(&[("TERM", "dumb")])));
    }

    #[test]
    fn no_in_place_redraws_in_ci() {
        assert!(live(true, &env(&[])));
        assert!(!live(true, &env(&[("CI", "true")])));
        assert!(!live(
            true,
            &env(&[("JENKINS_URL", "https://ci.example.com/")])
        ));
        assert!(!live(true, &env(&[("TERM", "dumb")])));
        assert!(!live(false, &env(&[])));
    }
}
