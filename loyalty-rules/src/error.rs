//! The one error type users see, and the diagnostics it carries.

use std::fmt;
use std::sync::Arc;

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;
use serde::Serialize;

/// What went wrong, as a stable machine-readable kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text does not parse.
    Syntax,
    /// An event name that is neither built in nor declared.
    UnknownEvent,
    /// A field that the event, item or customer does not have.
    UnknownField,
    /// A bare name that means nothing here.
    UnknownName,
    /// A tier that is not declared.
    UnknownTier,
    /// A reward that is not declared.
    UnknownReward,
    /// A type that does not exist, in a declaration.
    UnknownType,
    /// A function that does not exist.
    UnknownFunction,
    /// Values of the wrong type.
    TypeMismatch,
    /// A condition that can never be true.
    Contradiction,
    /// Two things with the same name.
    Duplicate,
    /// A rule or setting that is incomplete or inconsistent.
    InvalidRule,
    /// A program setting with a bad value (time zone, currency).
    InvalidSetting,
    /// A resource limit was exceeded (size, nesting, rules).
    Limit,
    /// An event that does not match its declared shape.
    InvalidEvent,
    /// A customer record that does not match the program's shape.
    InvalidCustomer,
    /// Input that is not valid JSON.
    Json,
}

impl ErrorKind {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::UnknownEvent => "unknown_event",
            ErrorKind::UnknownField => "unknown_field",
            ErrorKind::UnknownName => "unknown_name",
            ErrorKind::UnknownTier => "unknown_tier",
            ErrorKind::UnknownReward => "unknown_reward",
            ErrorKind::UnknownType => "unknown_type",
            ErrorKind::UnknownFunction => "unknown_function",
            ErrorKind::TypeMismatch => "type_mismatch",
            ErrorKind::Contradiction => "contradiction",
            ErrorKind::Duplicate => "duplicate",
            ErrorKind::InvalidRule => "invalid_rule",
            ErrorKind::InvalidSetting => "invalid_setting",
            ErrorKind::Limit => "limit",
            ErrorKind::InvalidEvent => "invalid_event",
            ErrorKind::InvalidCustomer => "invalid_customer",
            ErrorKind::Json => "json",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The program does not compile.
    Error,
    /// The program compiles but probably does not do what was meant.
    Warning,
}

/// One problem in a program's source, with its position.
///
/// `start`/`end` are UTF-8 byte offsets; `line`/`column` are 1-based and
/// columns count Unicode scalar values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Machine-readable kind.
    pub kind: ErrorKind,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset of the end.
    pub end: usize,
    /// 1-based line of the start.
    pub line: usize,
    /// 1-based column of the start.
    pub column: usize,
    /// 1-based line of the end.
    pub end_line: usize,
    /// 1-based column of the end.
    pub end_column: usize,
}

impl Diagnostic {
    pub(crate) fn new(
        source: &str,
        kind: ErrorKind,
        start: usize,
        end: usize,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        let start = clamp_to_char(source, start);
        let end = clamp_to_char(source, end.max(start));
        let (line, column) = line_col(source, start);
        let (end_line, end_column) = line_col(source, end);
        Diagnostic {
            severity: Severity::Error,
            kind,
            message,
            hint,
            start,
            end,
            line,
            column,
            end_line,
            end_column,
        }
    }

    /// Render this diagnostic with a source snippet and a caret, as the CLI
    /// prints it (no colour).
    pub fn render(&self, source: &str) -> String {
        self.render_named(source, "program")
    }

    /// Like [`render`](Self::render), naming the source `file_name`.
    pub fn render_named(&self, source: &str, file_name: &str) -> String {
        render_all(std::slice::from_ref(self), source, file_name)
    }
}

fn clamp_to_char(source: &str, mut at: usize) -> usize {
    at = at.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// 1-based line and column (in chars) of a byte offset.
pub(crate) fn line_col(source: &str, at: usize) -> (usize, usize) {
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Render diagnostics with codespan-reporting into one string.
pub(crate) fn render_all(diags: &[Diagnostic], source: &str, file_name: &str) -> String {
    let file = SimpleFile::new(file_name, source);
    let config = term::Config::default();
    let mut out = String::new();
    for d in diags {
        let sev = match d.severity {
            Severity::Error => cs::Severity::Error,
            Severity::Warning => cs::Severity::Warning,
        };
        let mut cd = cs::Diagnostic::new(sev)
            .with_code(d.kind.as_str())
            .with_message(&d.message)
            .with_labels(vec![cs::Label::primary((), d.start..d.end)]);
        if let Some(h) = &d.hint {
            cd = cd.with_notes(vec![format!("hint: {h}")]);
        }
        let mut buf = String::new();
        // Writing into a String cannot fail except on a codespan bug; fall
        // back to the one-line form rather than panic.
        if term::emit(&mut buf, &config, &file, &cd).is_err() {
            buf = format!(
                "{}[{}]: {} at {}:{}\n",
                match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                d.kind,
                d.message,
                d.line,
                d.column
            );
        }
        out.push_str(&buf);
    }
    out
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    message: String,
    field: Option<String>,
    diagnostics: Vec<Diagnostic>,
    source: Option<Arc<str>>,
}

/// The error type of this crate.
///
/// For a program that does not compile it carries every diagnostic (not
/// only the first); for a bad event or customer it names the field.
/// `Display` is one line; the alternate form (`{:#}`) adds the rendered
/// source snippets.
pub struct Error(Box<Inner>);

impl Error {
    pub(crate) fn from_diagnostics(diagnostics: Vec<Diagnostic>, source: &str) -> Error {
        let first = diagnostics
            .iter()
            .find(|d| d.severity == Severity::Error)
            .or(diagnostics.first());
        let (kind, message) = match first {
            Some(d) => {
                let errors = diagnostics
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                let more = if errors > 1 {
                    format!(
                        " (and {} more error{})",
                        errors - 1,
                        if errors > 2 { "s" } else { "" }
                    )
                } else {
                    String::new()
                };
                (
                    d.kind,
                    format!(
                        "{} at line {}, column {}{}",
                        d.message, d.line, d.column, more
                    ),
                )
            }
            None => (ErrorKind::Syntax, "invalid program".to_string()),
        };
        Error(Box::new(Inner {
            kind,
            message,
            field: None,
            diagnostics,
            source: Some(Arc::from(source)),
        }))
    }

    pub(crate) fn input(kind: ErrorKind, field: Option<String>, message: String) -> Error {
        Error(Box::new(Inner {
            kind,
            message,
            field,
            diagnostics: Vec::new(),
            source: None,
        }))
    }

    /// The kind of the (first) problem.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// A one-line description.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// For event and customer errors: the path of the offending field
    /// (`amount`, `items[2].price`).
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// Every diagnostic of a program that failed to compile, in source order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.0.diagnostics
    }

    /// All diagnostics rendered with source snippets, or the message.
    pub fn render(&self) -> String {
        self.render_named("program")
    }

    /// Like [`render`](Self::render), naming the source `file_name` in the snippets.
    pub fn render_named(&self, file_name: &str) -> String {
        match &self.0.source {
            Some(src) if !self.0.diagnostics.is_empty() => {
                render_all(&self.0.diagnostics, src, file_name)
            }
            _ => format!("error[{}]: {}\n", self.0.kind, self.0.message),
        }
    }

    /// The JSON form shared by every binding:
    /// `{"kind", "message", "field"?, "diagnostics"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("kind".into(), self.0.kind.as_str().into());
        m.insert("message".into(), self.0.message.clone().into());
        if let Some(f) = &self.0.field {
            m.insert("field".into(), f.clone().into());
        }
        m.insert(
            "diagnostics".into(),
            serde_json::to_value(&self.0.diagnostics).unwrap_or_default(),
        );
        serde_json::Value::Object(m)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .field("field", &self.0.field)
            .field("diagnostics", &self.0.diagnostics.len())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.write_str(&self.render())
        } else {
            f.write_str(&self.0.message)
        }
    }
}

impl std::error::Error for Error {}

/// Collects diagnostics for one source text.
pub(crate) struct Sink<'s> {
    pub source: &'s str,
    pub diags: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub fn new(source: &'s str) -> Sink<'s> {
        Sink {
            source,
            diags: Vec::new(),
        }
    }

    pub fn error(
        &mut self,
        kind: ErrorKind,
        span: crate::ast::Span,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.diags.push(Diagnostic::new(
            self.source,
            kind,
            span.start as usize,
            span.end as usize,
            message.into(),
            hint,
        ));
    }

    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn sorted(mut self) -> Vec<Diagnostic> {
        self.diags.sort_by_key(|d| (d.start, d.end));
        self.diags
    }
}

/// "did you mean `x`?" for the closest candidate, if any is close.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&lower, &c.to_ascii_lowercase());
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}
