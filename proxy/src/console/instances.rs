//! `SHOW INSTANCES`: the pgrelay instances sharing failover through etcd,
//! as this one last read them. No rows without `[coordination]`.

use pgrelay_health::coordination::CoordinationView;

use super::reply::{Reply, maybe, text};
use crate::admin::utc_text;

/// One row per live instance: its id, whether it leads, whether it is this
/// one, when it last reported, the primary it watches and whether it
/// reaches it. `up` false (this one is out of touch with etcd): the rows
/// are the last ones read.
pub fn instances(view: Option<&CoordinationView>) -> Reply {
    let rows = view
        .map(|view| {
            view.instances
                .iter()
                .map(|i| {
                    vec![
                        text(&i.id),
                        text(view.leader.as_deref() == Some(i.id.as_str())),
                        text(i.id == view.me),
                        text(utc_text(i.last_seen())),
                        maybe(i.primary.as_deref()),
                        text(i.sees_primary),
                        text(view.up),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    Reply::Rows {
        columns: &[
            "id",
            "leader",
            "this",
            "last_seen",
            "primary",
            "sees_primary",
            "coordination_up",
        ],
        rows,
        tag: "SHOW",
    }
}

#[cfg(test)]
mod tests {
    use pgrelay_health::coordination::InstanceReport;

    use super::*;

    #[test]
    fn one_row_per_instance_with_the_leader_and_this_one_marked() {
        let report = |id: &str, sees| InstanceReport {
            id: id.into(),
            at_ms: 1_735_787_049_000,
            primary: Some("pg1".into()),
            sees_primary: sees,
        };
        let view = CoordinationView {
            up: true,
            leader: Some("b".into()),
            instances: vec![report("a", false), report("b", true)],
            ..CoordinationView::initial("a".into())
        };
        let Reply::Rows { rows, .. } = instances(Some(&view)) else {
            panic!("rows expected");
        };
        let row = |values: [&str; 7]| values.map(|v| Some(v.to_owned())).to_vec();
        assert_eq!(
            rows,
            vec![
                row([
                    "a",
                    "false",
                    "true",
                    "2025-01-02 03:04:09 UTC",
                    "pg1",
                    "false",
                    "true"
                ]),
                row([
                    "b",
                    "true",
                    "false",
                    "2025-01-02 03:04:09 UTC",
                    "pg1",
                    "true",
                    "true"
                ]),
            ]
        );
        let Reply::Rows { rows, .. } = instances(None) else {
            panic!("rows expected");
        };
        assert!(rows.is_empty());
    }
}
