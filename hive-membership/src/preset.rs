//! Named failure-detection presets and their mapping onto memberlist's options.

use std::time::Duration;

use memberlist::Options;

use crate::config::MembershipConfig;

/// How long a dead member's address stays reserved for it. A restarted node comes
/// back with the same id on a new address (a new port when it binds port 0);
/// memberlist refuses such an address change until the old entry has been dead
/// this long (its default, 0, refuses it forever). Hive's node ids are stable
/// across restarts, so a member declared dead may be replaced at once.
const DEAD_NODE_RECLAIM_TIME: Duration = Duration::from_millis(1);

/// How long memberlist keeps a departed member in its table: for ever.
/// memberlist-core 0.8.5 reaps departed members after `gossip_to_the_dead_time`
/// by swapping them to the end of its member vector without updating its
/// id → index map (`move_dead_nodes`); the shuffle that follows repairs every
/// index but the one at position 0, so now and then a live member keeps a
/// stale index. Its next alive or suspect message then reads another member's
/// entry or panics the task handling it, and after a partition heals one node
/// keeps another dead for good — a split cluster that never merges. Never
/// reaping avoids the swap. The cost is one small entry per departed id, which
/// memberlist keeps gossiping to (a returning node learns it was declared dead
/// and refutes it at once); [`crate::Membership::members`] hides members once
/// `reconnect_timeout` has forgotten them.
const GOSSIP_TO_THE_DEAD: Duration = Duration::MAX;

/// Probe, suspicion, gossip and reconnect timings, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// memberlist's LAN defaults: probe every 500 ms with a 1 s timeout,
    /// suspicion multiplier 4, 3 indirect probes, gossip every 200 ms to 3 peers,
    /// push/pull every 30 s. A crash is detected in about 3 s. Failed members
    /// are tried again every 10 s.
    #[default]
    Lan,
    /// Fast timings for tests on one machine (loopback): memberlist's `local`
    /// options with probes every 200 ms, a 100 ms probe timeout, gossip every
    /// 50 ms, suspicion multiplier 2 and 1 indirect probe; push/pull every 15 s.
    /// A crash is detected in about 1 s. Failed members are tried again every
    /// second. Too aggressive for real networks.
    Local,
}

impl Preset {
    /// Returns about how long peers take to declare a silent member failed
    /// (a crash, or a process paused for that long).
    pub fn failure_detection(self) -> Duration {
        match self {
            Preset::Lan => Duration::from_secs(3),
            Preset::Local => Duration::from_secs(1),
        }
    }

    /// Returns the period between attempts to reconnect to failed members.
    pub fn reconnect_interval(self) -> Duration {
        match self {
            Preset::Lan => Duration::from_secs(10),
            Preset::Local => Duration::from_secs(1),
        }
    }

    /// Returns memberlist's options for this preset, before any override.
    fn options(self) -> Options {
        match self {
            Preset::Lan => Options::lan(),
            Preset::Local => Options::local()
                .with_probe_interval(Duration::from_millis(200))
                .with_probe_timeout(Duration::from_millis(100))
                .with_gossip_interval(Duration::from_millis(50))
                .with_suspicion_mult(2)
                // With 3 (lan) a small cluster holding one dead member cannot
                // gather enough confirmations, and suspicion stays long.
                .with_indirect_checks(1),
        }
    }
}

/// Returns the memberlist options for `config`: its preset, its gossip overrides,
/// the dead-node reclaim time Hive needs for restarts, and no reaping of
/// departed members.
pub(crate) fn memberlist_options(config: &MembershipConfig) -> Options {
    let mut options = config
        .preset
        .options()
        .with_dead_node_reclaim_time(DEAD_NODE_RECLAIM_TIME)
        .with_gossip_to_the_dead_time(GOSSIP_TO_THE_DEAD);
    if let Some(interval) = config.gossip_interval {
        options = options.with_gossip_interval(interval);
    }
    if let Some(fanout) = config.gossip_fanout {
        options = options.with_gossip_nodes(fanout);
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{NodeMeta, SizeLimits};

    fn config(preset: Preset) -> MembershipConfig {
        let meta = NodeMeta {
            rpc_addr: "127.0.0.1:7001".parse().unwrap(),
            vnodes: 100,
            replication_factor: 1,
            protocol_version: 1,
            incarnation: 0,
            size_limits: SizeLimits::default(),
        };
        let mut config = MembershipConfig::new("n1", "127.0.0.1:0".parse().unwrap(), meta);
        config.preset = preset;
        config
    }

    #[test]
    fn local_is_the_tuned_configuration() {
        let o = memberlist_options(&config(Preset::Local));
        assert_eq!(o.probe_interval(), Duration::from_millis(200));
        assert_eq!(o.probe_timeout(), Duration::from_millis(100));
        assert_eq!(o.gossip_interval(), Duration::from_millis(50));
        assert_eq!(o.suspicion_mult(), 2);
        assert_eq!(o.indirect_checks(), 1);
        assert_eq!(o.dead_node_reclaim_time(), DEAD_NODE_RECLAIM_TIME);
        assert_eq!(o.gossip_to_the_dead_time(), GOSSIP_TO_THE_DEAD);
    }

    #[test]
    fn lan_is_memberlists_default() {
        let o = memberlist_options(&config(Preset::Lan));
        let lan = Options::lan();
        assert_eq!(o.probe_interval(), lan.probe_interval());
        assert_eq!(o.gossip_interval(), lan.gossip_interval());
        assert_eq!(o.gossip_nodes(), lan.gossip_nodes());
        assert_eq!(o.dead_node_reclaim_time(), DEAD_NODE_RECLAIM_TIME);
        assert_eq!(o.gossip_to_the_dead_time(), GOSSIP_TO_THE_DEAD);
    }

    #[test]
    fn gossip_overrides_win_over_the_preset() {
        let mut c = config(Preset::Local);
        c.gossip_interval = Some(Duration::from_millis(700));
        c.gossip_fanout = Some(5);
        let o = memberlist_options(&c);
        assert_eq!(o.gossip_interval(), Duration::from_millis(700));
        assert_eq!(o.gossip_nodes(), 5);
        assert_eq!(o.probe_interval(), Duration::from_millis(200));
    }
}
