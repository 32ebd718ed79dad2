//! The config file as text, with positions: every diagnostic points at `file:line`.

use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, TableLike};

use super::Diagnostic;

/// A parsed `release.toml` that still knows where each key is.
pub struct Source {
    path: PathBuf,
    text: String,
    doc: ImDocument<String>,
}

/// One step of a path into the document: a key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(key: &str) -> Self {
        Seg::Key(key.to_owned())
    }
}

impl From<usize> for Seg {
    fn from(index: usize) -> Self {
        Seg::Index(index)
    }
}

/// Builds a path: `keypath!["services", name, "context"]`.
macro_rules! keypath {
    ($($seg:expr),* $(,)?) => { [$($crate::source::Seg::from($seg)),*] };
}
pub(crate) use keypath;

impl Source {
    /// Parses TOML syntax; a syntax error is one diagnostic at its line.
    pub fn parse(path: &Path, text: String) -> Result<Self, Diagnostic> {
        match ImDocument::parse(text.clone()) {
            Ok(doc) => Ok(Self {
                path: path.to_owned(),
                text,
                doc,
            }),
            Err(e) => {
                let line = e.span().map(|s| line_at(&text, s.start));
                let message = e.message().trim().to_owned();
                Err(
                    Diagnostic::new(path, line, format!("invalid TOML: {message}"))
                        .with_hint("check quoting and brackets near this line"),
                )
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn root(&self) -> &toml_edit::Table {
        self.doc.as_table()
    }

    /// The 1-based line of the key at `path`, or of the closest enclosing key found.
    pub fn line_of(&self, path: &[Seg]) -> Option<usize> {
        let mut best = None;
        let mut node: &dyn TableLike = self.root();
        let mut pending: Option<&Item> = None;
        for seg in path {
            match seg {
                Seg::Key(k) => {
                    if let Some(item) = pending.take() {
                        match item.as_table_like() {
                            Some(t) => node = t,
                            None => return best,
                        }
                    }
                    let Some((key, item)) = node.get_key_value(k) else {
                        return best;
                    };
                    if let Some(span) = key.span().or_else(|| item.span()) {
                        best = Some(line_at(&self.text, span.start));
                    }
                    pending = Some(item);
                }
                Seg::Index(i) => {
                    let (table, span): (Option<&dyn TableLike>, _) = match pending.take() {
                        Some(Item::ArrayOfTables(a)) => match a.get(*i) {
                            Some(t) => (Some(t as &dyn TableLike), t.span()),
                            None => return best,
                        },
                        Some(Item::Value(toml_edit::Value::Array(a))) => match a.get(*i) {
                            Some(v) => (v.as_inline_table().map(|t| t as &dyn TableLike), v.span()),
                            None => return best,
                        },
                        _ => return best,
                    };
                    if let Some(span) = span {
                        best = Some(line_at(&self.text, span.start));
                    }
                    match table {
                        Some(t) => node = t,
                        None => return best,
                    }
                }
            }
        }
        best
    }

    /// A diagnostic at `path`.
    pub fn at(&self, path: &[Seg], message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.path, self.line_of(path), message)
    }

    /// Every string value in the document with its line, for checks such as "no `latest`".
    pub fn strings(&self) -> Vec<(usize, String)> {
        let lines = LineIndex::new(&self.text);
        let mut out = Vec::new();
        collect_strings(self.doc.as_item(), &lines, &mut out);
        out
    }
}

fn collect_strings(item: &Item, lines: &LineIndex, out: &mut Vec<(usize, String)>) {
    match item {
        Item::Value(v) => collect_value(v, lines, out),
        Item::Table(t) => collect_table(t, lines, out),
        Item::ArrayOfTables(a) => {
            for t in a.iter() {
                collect_table(t, lines, out);
            }
        }
        Item::None => {}
    }
}

fn collect_table(t: &dyn TableLike, lines: &LineIndex, out: &mut Vec<(usize, String)>) {
    for (_, item) in t.iter() {
        collect_strings(item, lines, out);
    }
}

fn collect_value(v: &toml_edit::Value, lines: &LineIndex, out: &mut Vec<(usize, String)>) {
    match v {
        toml_edit::Value::String(s) => {
            let line = v.span().map(|s| lines.line_at(s.start)).unwrap_or(0);
            out.push((line, s.value().clone()));
        }
        toml_edit::Value::Array(a) => a.iter().for_each(|v| collect_value(v, lines, out)),
        toml_edit::Value::InlineTable(t) => {
            for (_, v) in t.iter() {
                collect_value(v, lines, out);
            }
        }
        _ => {}
    }
}

/// Byte offsets of every newline, so that many lookups do not each rescan the text (a
/// config with 100 checks has hundreds of strings).
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        LineIndex(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// 1-based line number of a byte offset: one more than the newlines before it.
    fn line_at(&self, offset: usize) -> usize {
        self.0.partition_point(|&newline| newline < offset) + 1
    }
}

/// 1-based line number of a byte offset (one lookup; [`LineIndex`] for many).
pub fn line_at(text: &str, offset: usize) -> usize {
    LineIndex::new(text).line_at(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_index_agrees_with_counting_newlines() {
        for text in ["", "a", "\n", "a\nb\n\nccc\n", "x = 1\n[t]\ny = \"z\"\n\n"] {
            let index = LineIndex::new(text);
            for offset in 0..=text.len() + 2 {
                let newlines_before = text.as_bytes()[..offset.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                assert_eq!(
                    index.line_at(offset),
                    newlines_before + 1,
                    "{text:?} @ {offset}"
                );
            }
        }
    }
}
