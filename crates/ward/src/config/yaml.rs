//! Reading a YAML file into serde structs, and reporting what is wrong with it as
//! `file:line: field: message`, the one error shape of the config and policy files.
//!
//! The parser is serde-saphyr: maintained (serde_yaml is archived), pure Rust, and it
//! reports a line for syntax, type and unknown-key errors and gives `Spanned<T>` for
//! values, so a semantic error ("not a loopback address") can name its line as well.

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;

/// One thing wrong with a config or policy file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as the user named it (empty for command-line values).
    pub file: String,
    /// 1-based line of the offending value, when known.
    pub line: Option<u64>,
    /// Field path, `inbound[0].target` (empty when the whole file is concerned).
    pub field: String,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.is_empty() {
            f.write_str(&self.file)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Formats a list of problems one per line (for the `Display` of the error enums).
pub(crate) fn join(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Collects the problems of one file, so a user sees every mistake in one run.
#[derive(Debug)]
pub(crate) struct Problems {
    file: String,
    list: Vec<Problem>,
}

impl Problems {
    /// An empty list for `file` (the name used in messages).
    pub(crate) fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            list: Vec::new(),
        }
    }

    /// Records a problem at the line of `at` (0 = unknown).
    pub(crate) fn at(&mut self, line: u64, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem {
            file: self.file.clone(),
            line: (line > 0).then_some(line),
            field: field.into(),
            message: message.into(),
        });
    }

    /// How many problems were recorded so far.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// True when nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems, in file order.
    pub(crate) fn into_vec(mut self) -> Vec<Problem> {
        self.list.sort_by_key(|p| p.line.unwrap_or(0));
        self.list
    }
}

/// The line of a spanned value (0 when the parser could not tell).
pub(crate) fn line<T>(value: &Spanned<T>) -> u64 {
    value.referenced.line()
}

/// The name a file is shown under in messages: the path as given.
pub(crate) fn display_name(path: &Path) -> String {
    path.display().to_string()
}

/// Parses `text` (the contents of `file`) into `T`.
///
/// Strict booleans: YAML 1.1 `yes`/`no`/`on`/`off` stay strings, so `admin: off` is
/// the word the config documents rather than a surprise boolean.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, Problem> {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(text, options).map_err(|err| {
        let err = err.without_snippet();
        let mut message = err.to_string();
        // The message ends with " at line L, column C"; the line goes in front instead.
        if let Some((head, _)) = message.rsplit_once(" at line ") {
            message = head.to_owned();
        }
        Problem {
            file: file.to_owned(),
            line: err.location().map(|l| l.line()).filter(|l| *l > 0),
            field: String::new(),
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(rename = "name")]
        _name: Option<String>,
    }

    #[test]
    fn syntax_error_names_file_and_line_without_snippet() {
        let err = parse::<Doc>("name: a\nnmae: b\n", "x.yaml").unwrap_err();
        assert_eq!(err.line, Some(2));
        let text = err.to_string();
        assert!(text.starts_with("x.yaml:2: unknown field `nmae`"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn yaml_1_1_booleans_are_strings() {
        #[derive(Debug, serde::Deserialize)]
        struct Word {
            w: String,
        }
        let doc: Word = parse("w: off\n", "x.yaml").unwrap();
        assert_eq!(doc.w, "off");
    }
}
