//! `[tracing]`: a span per statement, exported as OTLP/HTTP protobuf.
//! Absent means off: the data path then does nothing per statement.

use super::reader::{Problems, Section};

/// The service name spans carry unless the file says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "pgrelay";

/// Root statements (no sqlcommenter `traceparent`) sampled by default:
/// all of them; a statement with a parent follows its sampled flag.
pub const DEFAULT_SAMPLE_RATIO: f64 = 1.0;

/// `[tracing]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingConfig {
    /// Where spans are sent, e.g. `http://127.0.0.1:4318/v1/traces`
    /// (OTLP/HTTP, protobuf; plain HTTP: run a collector beside pgrelay).
    pub otlp_endpoint: String,
    /// `service.name` of the resource.
    pub service_name: String,
    /// The share of statements without a sampled parent that get a span.
    pub sample_ratio: SampleRatio,
    /// Whether spans carry the statement's text (`db.query.text`). Off by
    /// default: statements may carry secrets.
    pub statement_text: bool,
}

/// A ratio within 0.0..=1.0 (compared by its bits, so the config stays
/// `Eq`).
#[derive(Debug, Clone, Copy)]
pub struct SampleRatio(pub f64);

impl PartialEq for SampleRatio {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for SampleRatio {}

pub(super) fn read_tracing(mut s: Section<'_>, p: &mut Problems) -> Option<TracingConfig> {
    let endpoint = s.string("otlp_endpoint", p);
    let service_name = s
        .string("service_name", p)
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    if service_name.trim().is_empty() {
        p.push(s.key("service_name"), "must not be empty");
    }
    let sample_ratio = read_ratio(&mut s, p);
    let statement_text = s.boolean("statement_text", p).unwrap_or(false);
    let endpoint = match endpoint {
        None => {
            p.push(
                s.key("otlp_endpoint"),
                "required key is missing (e.g. \"http://127.0.0.1:4318/v1/traces\")",
            );
            None
        }
        Some(text) => check_endpoint(&text)
            .map_err(|message| p.push(s.key("otlp_endpoint"), message))
            .ok()
            .map(|()| text),
    };
    s.finish(p);
    Some(TracingConfig {
        otlp_endpoint: endpoint?,
        service_name,
        sample_ratio,
        statement_text,
    })
}

fn read_ratio(s: &mut Section<'_>, p: &mut Problems) -> SampleRatio {
    let ratio = match s.get("sample_ratio") {
        None => return SampleRatio(DEFAULT_SAMPLE_RATIO),
        Some(toml::Value::Float(f)) => *f,
        Some(toml::Value::Integer(n)) => *n as f64,
        Some(other) => {
            let found = other.type_str();
            p.push(
                s.key("sample_ratio"),
                format!("must be a number from 0.0 to 1.0, found a {found}"),
            );
            return SampleRatio(DEFAULT_SAMPLE_RATIO);
        }
    };
    if !(0.0..=1.0).contains(&ratio) {
        p.push(
            s.key("sample_ratio"),
            format!("must be from 0.0 to 1.0, found {ratio}"),
        );
        return SampleRatio(DEFAULT_SAMPLE_RATIO);
    }
    SampleRatio(ratio)
}

/// An `http://host:port/path` URL: the exporter speaks plain HTTP.
fn check_endpoint(text: &str) -> Result<(), String> {
    let uri: hyper::Uri = text
        .parse()
        .map_err(|e| format!("not a URL ({e}): {text:?}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(()),
        (Some("https"), _) => Err(format!(
            "https is not supported (send to a collector on this host over http): {text:?}"
        )),
        _ => Err(format!(
            "must be an http:// URL such as \"http://127.0.0.1:4318/v1/traces\", found {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn read(extra: &str) -> Result<Config, String> {
        let text = format!(
            "[[nodes]]\nname = \"pg1\"\naddr = \"127.0.0.1:5432\"\n[auth]\nmode = \"trust\"\n{extra}"
        );
        Config::from_toml_str(&text, &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_is_off_and_defaults_fill_the_rest() {
        assert_eq!(read("").expect("valid").tracing, None);
        let on = read("[tracing]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\n")
            .expect("valid")
            .tracing
            .expect("on");
        assert_eq!(on.service_name, "pgrelay");
        assert_eq!(on.sample_ratio.0, 1.0);
        assert!(!on.statement_text);
        let set = read(
            "[tracing]\notlp_endpoint = \"http://collector:4318/v1/traces\"\n\
             service_name = \"edge\"\nsample_ratio = 0.25\nstatement_text = true\n",
        )
        .expect("valid")
        .tracing
        .expect("on");
        assert_eq!(
            (
                set.service_name.as_str(),
                set.sample_ratio.0,
                set.statement_text
            ),
            ("edge", 0.25, true)
        );
    }

    #[test]
    fn every_mistake_is_named_by_its_key() {
        let cases = [
            ("[tracing]\nsample_ratio = 0.5\n", "tracing.otlp_endpoint"),
            (
                "[tracing]\notlp_endpoint = \"127.0.0.1:4318\"\n",
                "tracing.otlp_endpoint",
            ),
            (
                "[tracing]\notlp_endpoint = \"https://x:4318/v1/traces\"\n",
                "https is not supported",
            ),
            (
                "[tracing]\notlp_endpoint = \"http://x:4318\"\nsample_ratio = 1.5\n",
                "tracing.sample_ratio",
            ),
            (
                "[tracing]\notlp_endpoint = \"http://x:4318\"\nsample_ratio = \"all\"\n",
                "tracing.sample_ratio",
            ),
            (
                "[tracing]\notlp_endpoint = \"http://x:4318\"\nendpoint = \"x\"\n",
                "tracing.endpoint",
            ),
        ];
        for (toml, expected) in cases {
            let error = read(toml).expect_err(toml);
            assert!(error.contains(expected), "{toml}: {error}");
        }
    }
}
