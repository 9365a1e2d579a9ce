//! A hand-rolled walker over a parsed TOML table.
//!
//! Serde-derive would stop at the first mistake and report it without the
//! surrounding path; walking the table ourselves lets us collect every
//! problem, with its full dotted key, in a single pass. Every getter returns
//! `None` both when the key is absent and when it is wrong (after recording
//! why), so callers simply fall back to the default and carry on.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use toml::{Table, Value};

use super::defaults::{MAX_BYTE_SIZE, MAX_DURATION};
use super::error::Problem;
use super::units::{ByteSize, parse_duration};

/// Problems found so far, in the order they were found.
#[derive(Debug, Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(key, message));
    }
}

/// One TOML table being read, remembering which keys were consumed so the
/// leftovers can be reported as unknown.
pub(super) struct Section<'t> {
    path: String,
    table: &'t Table,
    known: BTreeSet<&'static str>,
}

impl<'t> Section<'t> {
    pub(super) fn new(path: String, table: &'t Table) -> Self {
        Section {
            path,
            table,
            known: BTreeSet::new(),
        }
    }

    /// This section's own dotted path, e.g. "auth.users[0]".
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// Whether `name` is written in the file at all, whatever its value.
    pub(super) fn has(&self, name: &str) -> bool {
        self.table.contains_key(name)
    }

    /// The full dotted path of `name` inside this section.
    pub(super) fn key(&self, name: &str) -> String {
        join_key(&self.path, name)
    }

    /// Marks `name` as known whether or not it is present.
    pub(super) fn get(&mut self, name: &'static str) -> Option<&'t Value> {
        self.known.insert(name);
        self.table.get(name)
    }

    pub(super) fn string(&mut self, name: &'static str, p: &mut Problems) -> Option<String> {
        match self.get(name)? {
            Value::String(s) => Some(s.clone()),
            other => self.wrong_type(name, "a string", other, p),
        }
    }

    pub(super) fn boolean(&mut self, name: &'static str, p: &mut Problems) -> Option<bool> {
        match self.get(name)? {
            Value::Boolean(b) => Some(*b),
            other => self.wrong_type(name, "a boolean", other, p),
        }
    }

    /// A non-negative integer within `min..=max`.
    pub(super) fn count(
        &mut self,
        name: &'static str,
        min: usize,
        max: usize,
        p: &mut Problems,
    ) -> Option<usize> {
        let n = match self.get(name)? {
            Value::Integer(n) => *n,
            other => return self.wrong_type(name, "an integer", other, p),
        };
        let message = match usize::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => return Some(n),
            Ok(n) if n > max => format!("must be at most {max}, found {n}"),
            _ if min == 0 => format!("must not be negative, found {n}"),
            _ => format!("must be at least {min}, found {n}"),
        };
        p.push(self.key(name), message);
        None
    }

    /// A duration string; numbers get the same "needs a unit" message as a
    /// unit-less string, since that is almost certainly what went wrong.
    pub(super) fn duration(&mut self, name: &'static str, p: &mut Problems) -> Option<Duration> {
        let parsed = match self.get(name)? {
            Value::String(s) => parse_duration(s),
            Value::Integer(n) => parse_duration(&n.to_string()),
            Value::Float(x) => parse_duration(&x.to_string()),
            other => return self.wrong_type(name, "a duration such as \"1s\"", other, p),
        };
        // Bounded so that `now + d` can never overflow, and because a
        // timeout of years is a typo, not a setting.
        let bounded = parsed.and_then(|d| {
            if d <= MAX_DURATION {
                Ok(d)
            } else {
                Err(format!(
                    "must be at most {}",
                    super::listing::duration(MAX_DURATION)
                ))
            }
        });
        self.report(name, bounded, p)
    }

    /// Like `duration`, but zero is refused: used for intervals and timeouts
    /// where zero would mean a busy loop or an immediate failure.
    pub(super) fn positive_duration(
        &mut self,
        name: &'static str,
        p: &mut Problems,
    ) -> Option<Duration> {
        let d = self.duration(name, p)?;
        if d.is_zero() {
            p.push(self.key(name), "must be greater than zero");
            return None;
        }
        Some(d)
    }

    /// A size string such as "16MB", or an integer number of bytes.
    pub(super) fn byte_size(&mut self, name: &'static str, p: &mut Problems) -> Option<ByteSize> {
        let parsed = match self.get(name)? {
            Value::String(s) => s.parse::<ByteSize>(),
            Value::Integer(n) => u64::try_from(*n)
                .map(ByteSize)
                .map_err(|_| format!("must not be negative, found {n}")),
            other => {
                let expected = "a size such as \"16MB\" or a number of bytes";
                return self.wrong_type(name, expected, other, p);
            }
        };
        let bounded = parsed.and_then(|size| {
            if size <= MAX_BYTE_SIZE {
                Ok(size)
            } else {
                Err(format!("must be at most {MAX_BYTE_SIZE}"))
            }
        });
        self.report(name, bounded, p)
    }

    /// A secret: written in the file as `name`, or named by `name_env` and
    /// read from the environment. `None` when neither is written (nothing
    /// reported) or when the one written is unusable (reported).
    pub(super) fn secret(
        &mut self,
        name: &'static str,
        name_env: &'static str,
        env: &dyn Fn(&str) -> Option<String>,
        p: &mut Problems,
    ) -> Option<String> {
        let literal = self.string(name, p);
        let variable = self.string(name_env, p);
        match (self.has(name), self.has(name_env)) {
            (true, true) => {
                let message = format!("set either {name} or {name_env}, not both");
                p.push(self.path().to_owned(), message);
                None
            }
            (false, false) => None,
            (true, false) => literal,
            (false, true) => {
                let var = variable?;
                let found = if var.is_empty() {
                    Err("must name an environment variable, found an empty string".to_owned())
                } else {
                    env(&var).ok_or_else(|| format!("environment variable \"{var}\" is not set"))
                };
                self.report(name_env, found, p)
            }
        }
    }

    pub(super) fn socket_addr(
        &mut self,
        name: &'static str,
        p: &mut Problems,
    ) -> Option<SocketAddr> {
        let text = self.string(name, p)?;
        let parsed = text.parse::<SocketAddr>().map_err(|_| {
            format!(
                "expected an IP address and port such as \"127.0.0.1:6432\" or \"[::]:6432\", found \"{text}\""
            )
        });
        self.report(name, parsed, p)
    }

    /// An existing directory named by an absolute path.
    pub(super) fn directory(
        &mut self,
        name: &'static str,
        p: &mut Problems,
    ) -> Option<std::path::PathBuf> {
        let text = self.string(name, p)?;
        let path = std::path::PathBuf::from(&text);
        let checked = if !path.is_absolute() {
            Err(format!("expected an absolute path, found \"{text}\""))
        } else if !path.is_dir() {
            Err(format!("\"{text}\" is not an existing directory"))
        } else {
            Ok(path)
        };
        self.report(name, checked, p)
    }

    /// A string parsed by `T::from_str`, whose error text becomes the message.
    pub(super) fn parsed<T>(&mut self, name: &'static str, p: &mut Problems) -> Option<T>
    where
        T: FromStr<Err = String>,
    {
        let text = self.string(name, p)?;
        self.report(name, text.parse::<T>(), p)
    }

    /// A file path (not checked here: the TLS files are read whole later).
    pub(super) fn file(&mut self, name: &'static str, p: &mut Problems) -> Option<PathBuf> {
        let text = self.string(name, p)?;
        if text.trim().is_empty() {
            p.push(self.key(name), "must not be empty");
            return None;
        }
        Some(PathBuf::from(text))
    }

    /// A sub-table, e.g. `[listen]` inside the root.
    pub(super) fn table(&mut self, name: &'static str, p: &mut Problems) -> Option<Section<'t>> {
        match self.get(name)? {
            Value::Table(t) => Some(Section::new(self.key(name), t)),
            other => self.wrong_type(name, "a table", other, p),
        }
    }

    /// An array of tables (`[[nodes]]`), each element paired with its
    /// indexed path; elements that are not tables are reported and skipped
    /// but still count towards the returned length.
    pub(super) fn tables(
        &mut self,
        name: &'static str,
        p: &mut Problems,
    ) -> Option<(usize, Vec<Section<'t>>)> {
        let items = match self.get(name)? {
            Value::Array(items) => items,
            other => return self.wrong_type(name, "an array of tables", other, p),
        };
        let mut sections = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("{}[{i}]", self.key(name));
            match item {
                Value::Table(t) => sections.push(Section::new(path, t)),
                other => p.push(path, expected_found("a table", other)),
            }
        }
        Some((items.len(), sections))
    }

    /// An array of strings; bad elements are reported at their index.
    pub(super) fn strings(&mut self, name: &'static str, p: &mut Problems) -> Option<Vec<String>> {
        let items = match self.get(name)? {
            Value::Array(items) => items,
            other => return self.wrong_type(name, "an array of strings", other, p),
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                other => p.push(
                    format!("{}[{i}]", self.key(name)),
                    expected_found("a string", other),
                ),
            }
        }
        Some(out)
    }

    /// Reports every key that no getter asked for. Must be called after
    /// all getters, which is why it consumes the section.
    pub(super) fn finish(self, p: &mut Problems) {
        for (name, value) in self.table {
            if self.known.contains(name.as_str()) {
                continue;
            }
            // At the top level a stray table is a whole misspelled section,
            // which deserves to be called that.
            let is_section = matches!(value, Value::Table(_))
                || matches!(value, Value::Array(a) if a.iter().all(Value::is_table) && !a.is_empty());
            let message = if self.path.is_empty() && is_section {
                "unknown section"
            } else {
                "unknown key"
            };
            p.push(self.key(name), message);
        }
    }

    fn report<T>(&self, name: &str, parsed: Result<T, String>, p: &mut Problems) -> Option<T> {
        parsed
            .map_err(|message| p.push(self.key(name), message))
            .ok()
    }

    fn wrong_type<T>(
        &self,
        name: &str,
        expected: &str,
        found: &Value,
        p: &mut Problems,
    ) -> Option<T> {
        p.push(self.key(name), expected_found(expected, found));
        None
    }
}

fn join_key(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn expected_found(expected: &str, found: &Value) -> String {
    format!("expected {expected}, found {}", describe(found))
}

/// The value's TOML type with an article, for "expected X, found Y".
fn describe(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}
