//! HELP and TYPE lines of families that may have no series at all.
//!
//! Some families are honest only with no series: a replica's lag is left
//! out while it is unknown (before the first probe, or with no replica),
//! never made up as 0. The prometheus crate drops a family without series
//! from `gather()` and its encoder refuses one, so the family would vanish
//! from the exposition; the text format allows a family of no samples, so
//! [`append_missing`] writes its two comment lines instead. Scrapers then
//! know the name and its type from startup (and `promtool` accepts it).

use prometheus::core::Desc;
use prometheus::proto::MetricFamily;

/// A family to be declared in every exposition, samples or not.
#[derive(Debug, Clone)]
pub struct Declared {
    name: String,
    help: String,
    kind: &'static str,
}

impl Declared {
    /// A gauge family described by `desc` (a vector's only [`Desc`]).
    pub fn gauge(desc: &Desc) -> Declared {
        Declared {
            name: desc.fq_name.clone(),
            help: desc.help.clone(),
            kind: "gauge",
        }
    }
}

/// Appends HELP and TYPE for each of `declared` that `gathered` lacks.
pub fn append_missing(declared: &[Declared], gathered: &[MetricFamily], text: &mut String) {
    for family in declared {
        let present = gathered
            .iter()
            .any(|f| f.name() == family.name && !f.get_metric().is_empty());
        if present {
            continue;
        }
        // Escaped as the text format wants it (and as the crate's encoder
        // escapes HELP).
        let help = family.help.replace('\\', "\\\\").replace('\n', "\\n");
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n",
            name = family.name,
            kind = family.kind
        ));
    }
}

#[cfg(test)]
mod tests {
    use prometheus::core::Collector;
    use prometheus::{GaugeVec, Opts};

    use super::*;

    #[test]
    fn an_empty_family_is_declared_and_a_filled_one_left_to_the_encoder() {
        let vec = GaugeVec::new(Opts::new("x_lag", "Lag \\ of\nx."), &["node"]).expect("vec");
        let declared = [Declared::gauge(vec.desc()[0])];
        let mut text = String::new();
        append_missing(&declared, &vec.collect(), &mut text);
        assert_eq!(
            text, "# HELP x_lag Lag \\\\ of\\nx.\n# TYPE x_lag gauge\n",
            "no series: declared"
        );
        vec.with_label_values(&["pg2"]).set(1.0);
        let mut text = String::new();
        append_missing(&declared, &vec.collect(), &mut text);
        assert_eq!(text, "", "with a series the encoder writes it");
    }
}
