//! Diagnostics: every problem found in an input file, with its position and a hint.
//!
//! Loading never stops at the first problem: parsers and validators push into a
//! [`Diagnostics`] list and the caller decides what to do with the whole set.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// A 1-based line and column inside a source file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Loc {
    /// 1-based line.
    pub line: u64,
    /// 1-based column (characters).
    pub column: u64,
}

impl Loc {
    /// A location from a serde-saphyr location.
    pub fn from_saphyr(l: &serde_saphyr::Location) -> Self {
        Loc {
            line: l.line(),
            column: l.column(),
        }
    }
}

/// A value read from YAML together with the position it was written at.
///
/// Wraps `serde_saphyr::Spanned` so the JSON schema sees only the inner type.
#[derive(Debug, Clone, Default)]
pub struct Sp<T> {
    /// The value.
    pub value: T,
    /// Where the value was written.
    pub loc: Loc,
}

impl<T> Sp<T> {
    /// A value with no known position (built in code, not read from a file).
    pub fn bare(value: T) -> Self {
        Sp {
            value,
            loc: Loc::default(),
        }
    }
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Sp<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        Ok(Sp {
            loc: Loc::from_saphyr(&s.referenced),
            value: s.value,
        })
    }
}

impl<T: Serialize> Serialize for Sp<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Sp<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file is rejected.
    Error,
    /// The file is accepted, but something is likely wrong.
    Warning,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable kebab-case code, e.g. `unknown-reference`.
    pub code: &'static str,
    /// The file the problem is in.
    pub file: String,
    /// Where in the file.
    pub loc: Loc,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        // Line 0 means the problem has no position (an unreadable file, a command-line
        // value): name the file alone rather than print `:0:0`.
        if self.loc.line == 0 {
            write!(f, "{sev}[{}]: {}: {}", self.code, self.file, self.message)?;
        } else {
            write!(
                f,
                "{sev}[{}]: {}:{}:{}: {}",
                self.code, self.file, self.loc.line, self.loc.column, self.message
            )?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// The problems found in one file, in the order they were found.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    file: String,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty list for `file`.
    pub fn new(file: impl Into<String>) -> Self {
        Diagnostics {
            file: file.into(),
            items: Vec::new(),
        }
    }

    /// The file these diagnostics are about.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Record an error.
    pub fn error(
        &mut self,
        code: &'static str,
        loc: Loc,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Error, code, loc, message.into(), hint);
    }

    /// Record a warning.
    pub fn warning(
        &mut self,
        code: &'static str,
        loc: Loc,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(Severity::Warning, code, loc, message.into(), hint);
    }

    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        loc: Loc,
        message: String,
        hint: Option<String>,
    ) {
        let d = Diagnostic {
            severity,
            code,
            file: self.file.clone(),
            loc,
            message,
            hint,
        };
        if !self.items.contains(&d) {
            self.items.push(d);
        }
    }

    /// True when at least one error (not warning) was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// All diagnostics sorted by position.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|a| (a.loc, a.severity));
        self.items
    }

    /// Read access to what was recorded so far.
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// Keep, of the diagnostics recorded from index `start` on, those for which `keep` is
    /// true (the earlier ones all stay).
    pub fn retain_from(&mut self, start: usize, keep: impl Fn(&Diagnostic) -> bool) {
        let mut i = 0;
        self.items.retain(|d| {
            i += 1;
            i <= start || keep(d)
        });
    }
}

/// "did you mean `x`?" for the closest of `candidates` to `wrong`, if any is close enough.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(wrong, c);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// A hint listing what is allowed, with "did you mean" first when one is close.
pub fn suggest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str> + Clone) -> String {
    let all: Vec<&str> = candidates.clone().into_iter().collect();
    let list = if all.is_empty() {
        "none are defined".to_string()
    } else {
        format!(
            "known: {}",
            all.iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match did_you_mean(wrong, candidates) {
        Some(d) => format!("{d} ({list})"),
        None => list,
    }
}

/// What a long-running command logs of a set of diagnostics: each error and each warning
/// whose code occurs once in full, and one line per code that repeats (`summaries`), so
/// that a fresh `serve` does not open with a screen of alike warnings.
#[derive(Debug, Default, PartialEq)]
pub struct Summary<'a> {
    /// Diagnostics to show in full: errors, and warnings whose code occurs once.
    pub full: Vec<&'a Diagnostic>,
    /// One line per repeated warning code, in order of first occurrence.
    pub summaries: Vec<String>,
    /// The warnings a summary line stands for (logged at debug level).
    pub summarised: Vec<&'a Diagnostic>,
}

/// Group `diags` as [`Summary`] says. A summary line names the code, the count and the
/// files (by stem, at most four, then "…"), and points at `yanzhen validate` for each.
pub fn summarise(diags: &[Diagnostic]) -> Summary<'_> {
    let mut out = Summary::default();
    let mut order: Vec<&'static str> = Vec::new();
    let mut counts: std::collections::HashMap<&'static str, usize> = Default::default();
    for d in diags.iter().filter(|d| d.severity == Severity::Warning) {
        let n = counts.entry(d.code).or_insert(0);
        if *n == 0 {
            order.push(d.code);
        }
        *n += 1;
    }
    for d in diags {
        if d.severity == Severity::Warning && counts[d.code] > 1 {
            out.summarised.push(d);
        } else {
            out.full.push(d);
        }
    }
    for code in order.into_iter().filter(|c| counts[c] > 1) {
        let mut files: Vec<String> = Vec::new();
        for d in diags.iter().filter(|d| d.code == code) {
            let stem = std::path::Path::new(&d.file)
                .file_stem()
                .map_or_else(|| d.file.clone(), |s| s.to_string_lossy().into_owned());
            if !files.contains(&stem) {
                files.push(stem);
            }
        }
        let shown = files.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
        let more = if files.len() > 4 { ", …" } else { "" };
        out.summaries.push(format!(
            "warning[{code}]: {} warnings in {} file{} ({shown}{more}); run `yanzhen validate` for each",
            counts[code],
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_picks_the_closest_known_id() {
        assert_eq!(
            did_you_mean("nominte", ["inspect", "nominate", "decide"]),
            Some("did you mean `nominate`?".into())
        );
        assert_eq!(did_you_mean("zzz", ["inspect", "nominate"]), None);
    }

    #[test]
    fn diagnostic_display_names_file_line_column_and_hint() {
        let mut d = Diagnostics::new("workflows/a.yaml");
        d.error(
            "unknown-reference",
            Loc { line: 3, column: 7 },
            "unknown task `x`",
            Some("did you mean `y`?".into()),
        );
        let all = d.into_sorted();
        assert_eq!(
            all[0].to_string(),
            "error[unknown-reference]: workflows/a.yaml:3:7: unknown task `x`\n  hint: did you mean `y`?"
        );
    }

    fn warning(code: &'static str, file: &str) -> Diagnostic {
        let mut d = Diagnostics::new(file);
        d.warning(code, Loc::default(), "m", None);
        d.into_sorted().remove(0)
    }

    #[test]
    fn summarise_keeps_single_warnings_and_errors_and_folds_repeated_codes_into_one_line() {
        let mut e = Diagnostics::new("workflows/x.yaml");
        e.error("unknown-reference", Loc::default(), "m", None);
        let mut all = vec![
            warning("calendar-provisional", "workflows/a.yaml"),
            warning("calendar-file-missing", "config/calendar/2027.json"),
            warning("calendar-provisional", "workflows/b.yaml"),
            warning("calendar-provisional", "workflows/b.yaml"),
        ];
        all.extend(e.into_sorted());
        let s = summarise(&all);
        assert_eq!(s.full.len(), 2, "{s:?}");
        assert_eq!(s.summarised.len(), 3);
        assert_eq!(
            s.summaries,
            vec![
                "warning[calendar-provisional]: 3 warnings in 2 files (a, b); run `yanzhen validate` for each"
                    .to_string()
            ]
        );
    }
}
