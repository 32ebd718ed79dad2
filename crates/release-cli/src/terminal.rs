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

/// `text` cut to at most `width` terminal columns: by display width (a CJK character takes
/// two, a combining mark none), never inside a character.
pub fn cut_to_width(text: &str, width: usize) -> &str {
    use unicode_width::UnicodeWidthChar as _;
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += c.width().unwrap_or(0);
        if used > width {
            return &text[..i];
        }
    }
    text
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
    fn rows_are_cut_by_display_width_not_by_characters() {
        assert_eq!(cut_to_width("deploy: api", 6), "deploy");
        assert_eq!(cut_to_width("short", 80), "short");
        // Two columns each: three fit in 6, not 6 characters.
        assert_eq!(cut_to_width("服务服务服务", 6), "服务服");
        assert_eq!(cut_to_width("服务", 3), "服");
        // A combining accent takes no column and stays with its letter.
        assert_eq!(cut_to_width("e\u{301}tat", 2), "e\u{301}t");
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
