//! Progress on stderr: a board redrawn in place on a terminal a person watches, plain
//! lines in a log ([`crate::terminal`] says which).

use std::time::Instant;

use engine::Progress;

/// Progress on stderr. On an interactive terminal, one line per service redrawn in place;
/// in CI (`CI` or `JENKINS_URL` set), under `NO_COLOR` or `TERM=dumb`, or when stderr is not
/// a terminal, a plain line per state change with the seconds since the deploy started.
pub fn printer(quiet: bool, started: Instant) -> impl Fn(Progress<'_>) + Sync + use<> {
    let in_place = crate::terminal::stderr_live();
    let board = std::sync::Mutex::new(Board::default());
    move |p: Progress<'_>| {
        if quiet {
            return;
        }
        let seconds = started.elapsed().as_secs_f64();
        if in_place {
            // Rows longer than the terminal would wrap and throw the redraw off by a line.
            let width = terminal_size::terminal_size_of(std::io::stderr())
                .map_or(80, |(w, _)| usize::from(w.0));
            let mut board = board.lock().unwrap_or_else(|e| e.into_inner());
            eprint!("{}", board.update(p.service, &p.state, seconds, width));
        } else {
            eprintln!("deploy: [{seconds:>5.1}s] {}: {}", p.service, p.state);
        }
    }
}

/// The in-place progress block: a row per service in order of first appearance.
#[derive(Debug, Default)]
struct Board {
    rows: Vec<(String, String, f64)>,
    drawn: usize,
}

impl Board {
    /// Records `service`'s new state; returns the text that redraws the whole block over the
    /// one drawn before (cursor up, then each row cleared and written, cut to `width - 1`
    /// characters so that no row wraps).
    fn update(&mut self, service: &str, state: &str, seconds: f64, width: usize) -> String {
        match self.rows.iter_mut().find(|r| r.0 == service) {
            Some(row) => {
                row.1 = state.to_owned();
                row.2 = seconds;
            }
            None => self
                .rows
                .push((service.to_owned(), state.to_owned(), seconds)),
        }
        let pad = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for (name, state, at) in &self.rows {
            let row = format!("deploy: {name:<pad$}  [{at:>5.1}s] {state}");
            let row = crate::terminal::cut_to_width(&row, width.saturating_sub(1).max(20));
            out.push_str(&format!("\r\x1b[2K{row}\n"));
        }
        self.drawn = self.rows.len();
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_terminal_board_redraws_every_service_in_place() {
        let mut board = Board::default();
        let first = board.update("api", "updating", 0.5, 120);
        assert_eq!(first, "\r\x1b[2Kdeploy: api  [  0.5s] updating\n");
        let second = board.update("admin-app", "updating", 0.6, 120);
        assert!(second.starts_with("\x1b[1A"), "{second:?}");
        let third = board.update("api", "converged", 7.31, 120);
        assert_eq!(
            third,
            "\x1b[2A\r\x1b[2Kdeploy: api        [  7.3s] converged\n\r\x1b[2Kdeploy: admin-app  [  0.6s] updating\n"
        );
        // A narrow terminal: rows are cut, never wrapped.
        let narrow = board.update("api", &"x".repeat(200), 8.0, 40);
        for row in narrow.split('\n').filter(|r| !r.is_empty()) {
            let visible = row.rsplit("\x1b[2K").next().unwrap();
            assert!(visible.chars().count() <= 39, "{visible:?}");
        }
    }
}
