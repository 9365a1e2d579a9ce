//! `pgrelay_leader`, `pgrelay_instances` and `pgrelay_coordination_up`,
//! from what the coordination task last read from etcd, at scrape time.
//! Registered from the start; without `[coordination]` this instance is
//! its own failover authority: leader 1, instances 1, coordination_up 0.

use std::sync::{Arc, OnceLock};

use pgrelay_health::coordination::CoordinationView;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, Opts};
use tokio::sync::watch;

/// Where the proxy puts the coordination view once the task exists.
pub type CoordinationSlot = Arc<OnceLock<watch::Receiver<CoordinationView>>>;

#[derive(Debug)]
pub struct CoordinationCollector {
    view: CoordinationSlot,
    leader: IntGauge,
    instances: IntGauge,
    up: IntGauge,
    descs: Vec<Desc>,
}

impl CoordinationCollector {
    pub fn new(view: CoordinationSlot) -> prometheus::Result<CoordinationCollector> {
        let leader = IntGauge::with_opts(Opts::new(
            "pgrelay_leader",
            "1 when this instance may run failover: it holds the leadership key in etcd \
             (or runs alone, without [coordination]).",
        ))?;
        let instances = IntGauge::with_opts(Opts::new(
            "pgrelay_instances",
            "Live pgrelay instances sharing failover through etcd, as last read \
             (1 without [coordination]).",
        ))?;
        let up = IntGauge::with_opts(Opts::new(
            "pgrelay_coordination_up",
            "1 while this instance is in touch with etcd; 0 when out of touch (it routes \
             to the last primary it knows and promotes nothing) or without [coordination].",
        ))?;
        let descs = [&leader, &instances, &up]
            .iter()
            .flat_map(|g| g.desc())
            .cloned()
            .collect();
        Ok(CoordinationCollector {
            view,
            leader,
            instances,
            up,
            descs,
        })
    }
}

impl Collector for CoordinationCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (leader, instances, up) = match self.view.get() {
            Some(view) => {
                let view = view.borrow();
                let live = i64::try_from(view.instances.len()).unwrap_or(i64::MAX);
                (view.leading(), live, view.up)
            }
            None => (true, 1, false),
        };
        self.leader.set(i64::from(leader));
        self.instances.set(instances);
        self.up.set(i64::from(up));
        let mut families = self.leader.collect();
        families.extend(self.instances.collect());
        families.extend(self.up.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use pgrelay_health::coordination::InstanceReport;
    use prometheus::Registry;

    use super::super::testing::{assert_lines, scrape};
    use super::*;

    #[test]
    fn alone_then_following_then_leading_then_cut_off() {
        let slot = CoordinationSlot::default();
        let registry = Registry::new();
        let collector = CoordinationCollector::new(Arc::clone(&slot)).expect("collector");
        registry.register(Box::new(collector)).expect("registers");
        let alone = [
            "pgrelay_leader 1",
            "pgrelay_instances 1",
            "pgrelay_coordination_up 0",
        ];
        assert_lines(&scrape(&registry), &alone);

        let report = |id: &str| InstanceReport {
            id: id.into(),
            at_ms: 0,
            primary: None,
            sees_primary: false,
        };
        let (tx, rx) = watch::channel(CoordinationView {
            up: true,
            leader: Some("b".into()),
            instances: vec![report("a"), report("b")],
            ..CoordinationView::initial("a".into())
        });
        slot.set(rx).expect("set once");
        let following = [
            "pgrelay_leader 0",
            "pgrelay_instances 2",
            "pgrelay_coordination_up 1",
        ];
        assert_lines(&scrape(&registry), &following);
        tx.send_modify(|v| v.leader = Some("a".into()));
        assert_lines(&scrape(&registry), &["pgrelay_leader 1"]);
        tx.send_modify(|v| v.up = false);
        let cut_off = ["pgrelay_leader 0", "pgrelay_coordination_up 0"];
        assert_lines(&scrape(&registry), &cut_off);
    }
}
