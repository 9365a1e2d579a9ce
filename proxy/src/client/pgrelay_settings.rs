//! pgrelay's own settings in a startup packet: `pgrelay.min_lsn=0/3000060`
//! as a parameter of its own, or in `options` (`-c pgrelay.min_lsn=…`,
//! `--pgrelay.min_lsn=…`), as libpq's `options=-c …` and `PGOPTIONS` send
//! them. They are the session's, never the nodes': taken out of what the
//! nodes see (a pooled connection's parameters stay the same whatever
//! token a client brings).

use std::borrow::Cow;

use crate::wire::startup::StartupParams;

const PREFIX: &str = "pgrelay.";

/// (name, value) pairs, in the order given.
pub type Settings = Vec<(String, String)>;

/// The client's other parameters, borrowed from its startup packet (an
/// `options` value is rewritten only if it held pgrelay's settings):
/// copying each name and value cost a dozen allocations per connection.
pub type Rest<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// The client's startup parameters without pgrelay's settings, and those
/// settings as (name after `pgrelay.`, value), in the order given.
pub fn split(params: &StartupParams) -> (Rest<'_>, Settings) {
    let mut rest = Vec::new();
    let mut settings = Vec::new();
    for (name, value) in &params.params {
        if let Some(setting) = name.strip_prefix(PREFIX) {
            settings.push((setting.to_owned(), value.clone()));
        } else if name == "options" {
            let kept = take_from_options(value, &mut settings);
            if kept == *value {
                rest.push((name.as_str(), Cow::Borrowed(value.as_str())));
            } else if !kept.is_empty() {
                rest.push((name.as_str(), Cow::Owned(kept)));
            }
        } else {
            rest.push((name.as_str(), Cow::Borrowed(value.as_str())));
        }
    }
    (rest, settings)
}

/// Moves the `pgrelay.*` settings of an `options` string into `settings`;
/// what remains, as written.
fn take_from_options(options: &str, settings: &mut Vec<(String, String)>) -> String {
    let words = words(options);
    let mut kept: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let (_, text) = &words[i];
        // `-c name=value`, `-cname=value` or `--name=value`.
        let (assignment, used) = match text.as_str() {
            "-c" => (words.get(i + 1).map(|(_, t)| t.as_str()), 2),
            t if t.starts_with("--") => (Some(&t[2..]), 1),
            t if t.starts_with("-c") => (Some(&t[2..]), 1),
            _ => (None, 1),
        };
        let setting = assignment
            .and_then(|a| a.strip_prefix(PREFIX))
            .and_then(|a| a.split_once('='));
        match setting {
            Some((name, value)) => settings.push((name.to_owned(), value.to_owned())),
            None => kept.extend(
                words[i..(i + used).min(words.len())]
                    .iter()
                    .map(|(r, _)| *r),
            ),
        }
        i += used;
    }
    kept.join(" ")
}

/// PostgreSQL's reading of `options`: words split at unescaped
/// whitespace, `\` escaping the next character. Each word as written and
/// as meant.
fn words(options: &str) -> Vec<(&str, String)> {
    let mut words = Vec::new();
    let mut start = None;
    let mut text = String::new();
    let mut escaped = false;
    for (at, c) in options.char_indices() {
        if escaped {
            text.push(c);
            escaped = false;
            continue;
        }
        if c.is_ascii_whitespace() {
            if let Some(from) = start.take() {
                words.push((&options[from..at], std::mem::take(&mut text)));
            }
            continue;
        }
        start.get_or_insert(at);
        if c == '\\' {
            escaped = true;
        } else {
            text.push(c);
        }
    }
    if let Some(from) = start {
        words.push((&options[from..], text));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> StartupParams {
        StartupParams::from_pairs(list)
    }

    type Pairs = &'static [(&'static str, &'static str)];

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_come_out_of_parameters_and_options() {
        let cases: &[(Pairs, Pairs, Pairs)] = &[
            (
                &[("application_name", "a"), ("pgrelay.min_lsn", "0/5")],
                &[("application_name", "a")],
                &[("min_lsn", "0/5")],
            ),
            (
                &[("options", "-c pgrelay.min_lsn=0/5")],
                &[],
                &[("min_lsn", "0/5")],
            ),
            (
                &[(
                    "options",
                    "-c search_path=x --pgrelay.scope=cluster -cgeqo=off",
                )],
                &[("options", "-c search_path=x -cgeqo=off")],
                &[("scope", "cluster")],
            ),
            (
                &[(
                    "options",
                    "-c pgrelay.consistency=strong -c pgrelay.min_lsn=0/6",
                )],
                &[],
                &[("consistency", "strong"), ("min_lsn", "0/6")],
            ),
            (
                &[("options", "-c application_name=a\\ b")],
                &[("options", "-c application_name=a\\ b")],
                &[],
            ),
            (&[("options", "-c")], &[("options", "-c")], &[]),
        ];
        for (given, rest, settings) in cases {
            let given_params = params(given);
            let (r, s) = split(&given_params);
            let r: Vec<(String, String)> = r
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.into_owned()))
                .collect();
            assert_eq!((r, s), (pairs(rest), pairs(settings)), "{given:?}");
        }
    }
}
