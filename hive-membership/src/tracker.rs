//! Pure bookkeeping that turns memberlist's join/update/leave notifications into
//! typed events, telling a graceful leave from a failure.
//!
//! memberlist reports a leave and a failure the same way (`notify_leave`, with a
//! stale state). A leaving Hive node first advertises metadata with its `leaving`
//! flag set; the tracker remembers each member's last flag, so when the member
//! then disappears it is reported `Left` if the flag was set and `Failed`
//! otherwise.
//!
//! A member whose incarnation changes while it is alive restarted before its
//! failure was noticed, and is reported `Restarted`.
//!
//! It also remembers when each member departed, so `reconnect.rs` can try
//! failed ones again (not those that left) and forget departed ones after
//! `reconnect_timeout`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::event::MembershipEvent;
use crate::member::{MemberInfo, MemberState};
use crate::meta::{NodeMeta, WireMeta};

/// What memberlist told the delegate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// `notify_join`: a member appeared or came back.
    Joined,
    /// `notify_update`: a member's metadata changed.
    Updated,
    /// `notify_leave`: a member left or was declared dead.
    Departed,
}

/// One notification, stripped of memberlist types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) change: Change,
    pub(crate) id: String,
    pub(crate) addr: SocketAddr,
    /// The member's raw metadata as memberlist last knew it.
    pub(crate) meta: Vec<u8>,
}

/// What the tracker remembers about one member.
#[derive(Debug, Clone)]
struct Known {
    addr: SocketAddr,
    meta: NodeMeta,
    /// The member's last metadata announced a graceful leave.
    leaving: bool,
    /// `Some(Dead | Left)` once the member has departed.
    departed: Option<MemberState>,
    /// When the member departed, until it is forgotten.
    departed_at: Option<Instant>,
}

/// What to do about failed members, from [`Tracker::reconnects`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reconnects {
    /// Failed members to try again: id and last gossip address.
    pub(crate) retry: Vec<(String, SocketAddr)>,
    /// Members that departed longer ago than the timeout, failed ones included
    /// (given up on); they are no longer tracked.
    pub(crate) forgotten: Vec<String>,
}

/// The members this node has heard of, other than itself.
#[derive(Debug)]
pub(crate) struct Tracker {
    local_id: String,
    known: HashMap<String, Known>,
}

impl Tracker {
    pub(crate) fn new(local_id: String) -> Self {
        Self {
            local_id,
            known: HashMap::new(),
        }
    }

    /// Applies one notification; returns the event it makes, if any. Notices
    /// about this node, undecodable metadata (refused at admission anyway), a
    /// change of the `leaving` flag alone, and repeated departures make none.
    pub(crate) fn apply(&mut self, notice: Notice) -> Option<MembershipEvent> {
        let Notice {
            change,
            id,
            addr,
            meta,
        } = notice;
        if id == self.local_id {
            return None;
        }
        let wire = WireMeta::decode(&meta);
        if let Err(e) = &wire {
            tracing::debug!(peer = %id, error = %e, "ignoring a member with undecodable metadata");
        }
        match change {
            Change::Joined | Change::Updated => {
                let wire = wire.ok()?;
                let fresh = Known {
                    addr,
                    meta: wire.meta,
                    leaving: wire.leaving,
                    departed: None,
                    departed_at: None,
                };
                let info = MemberInfo {
                    id: id.clone(),
                    gossip_addr: addr,
                    meta: wire.meta,
                    state: MemberState::Alive,
                };
                match self.known.insert(id, fresh) {
                    // Back before anyone saw it go: a crash and a restart.
                    Some(old)
                        if old.departed.is_none()
                            && old.meta.incarnation != wire.meta.incarnation =>
                    {
                        Some(MembershipEvent::Restarted(info))
                    }
                    Some(old) if old.departed.is_none() => (old.meta != wire.meta
                        || old.addr != addr)
                        .then_some(MembershipEvent::Updated(info)),
                    _ => Some(MembershipEvent::Joined(info)),
                }
            }
            Change::Departed => {
                let known = self.known.get_mut(&id)?;
                if known.departed.is_some() {
                    return None;
                }
                let leaving = known.leaving || wire.is_ok_and(|w| w.leaving);
                known.leaving = leaving;
                known.departed_at = Some(Instant::now());
                if leaving {
                    known.departed = Some(MemberState::Left);
                    Some(MembershipEvent::Left(id))
                } else {
                    known.departed = Some(MemberState::Dead);
                    Some(MembershipEvent::Failed(id))
                }
            }
        }
    }

    /// Returns how a member memberlist no longer lists as online departed:
    /// `Left` if its last metadata announced a leave, `Dead` otherwise.
    pub(crate) fn departed_state(&self, id: &str) -> MemberState {
        match self.known.get(id) {
            Some(known) if known.leaving => MemberState::Left,
            _ => MemberState::Dead,
        }
    }

    /// Returns whether `id` is live or departed within `reconnect_timeout`:
    /// a member this node has heard join and has not forgotten.
    pub(crate) fn tracks(&self, id: &str) -> bool {
        self.known.contains_key(id)
    }

    /// Returns the failed members to try to reconnect to at `now`, and forgets
    /// the members that departed `timeout` or longer ago: the tracker holds the
    /// live members and those departed within the last `timeout`.
    pub(crate) fn reconnects(&mut self, now: Instant, timeout: Duration) -> Reconnects {
        let mut reconnects = Reconnects::default();
        self.known.retain(|id, known| match known.departed_at {
            Some(at) if now.saturating_duration_since(at) >= timeout => {
                reconnects.forgotten.push(id.clone());
                false
            }
            Some(_) if known.departed == Some(MemberState::Dead) => {
                reconnects.retry.push((id.clone(), known.addr));
                true
            }
            _ => true,
        });
        reconnects.retry.sort();
        reconnects.forgotten.sort();
        reconnects
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.known.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(vnodes: u32) -> NodeMeta {
        NodeMeta {
            rpc_addr: "127.0.0.1:7001".parse().unwrap(),
            vnodes,
            replication_factor: 2,
            protocol_version: 1,
            incarnation: 0,
            size_limits: crate::meta::SizeLimits::default(),
        }
    }

    fn notice(change: Change, id: &str, port: u16, vnodes: u32, leaving: bool) -> Notice {
        Notice {
            change,
            id: id.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            meta: WireMeta {
                meta: meta(vnodes),
                leaving,
            }
            .encode()
            .unwrap(),
        }
    }

    fn joined(id: &str, port: u16, vnodes: u32) -> MembershipEvent {
        MembershipEvent::Joined(MemberInfo {
            id: id.into(),
            gossip_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            meta: meta(vnodes),
            state: MemberState::Alive,
        })
    }

    #[test]
    fn a_join_is_reported_with_its_metadata() {
        let mut t = Tracker::new("me".into());
        assert_eq!(
            t.apply(notice(Change::Joined, "b", 2, 100, false)),
            Some(joined("b", 2, 100))
        );
    }

    #[test]
    fn notices_about_this_node_are_not_events() {
        let mut t = Tracker::new("me".into());
        assert_eq!(t.apply(notice(Change::Joined, "me", 1, 100, false)), None);
        assert_eq!(t.apply(notice(Change::Departed, "me", 1, 100, true)), None);
    }

    #[test]
    fn departure_without_leaving_flag_is_a_failure() {
        let mut t = Tracker::new("me".into());
        t.apply(notice(Change::Joined, "b", 2, 100, false));
        assert_eq!(
            t.apply(notice(Change::Departed, "b", 2, 100, false)),
            Some(MembershipEvent::Failed("b".into()))
        );
        assert_eq!(t.departed_state("b"), MemberState::Dead);
    }

    #[test]
    fn departure_after_leaving_flag_is_a_leave() {
        let mut t = Tracker::new("me".into());
        t.apply(notice(Change::Joined, "b", 2, 100, false));
        // The leaving flag alone is not an event: the public metadata is unchanged.
        assert_eq!(t.apply(notice(Change::Updated, "b", 2, 100, true)), None);
        // memberlist may hand over stale metadata with the leave; the flag sticks.
        assert_eq!(
            t.apply(notice(Change::Departed, "b", 2, 100, false)),
            Some(MembershipEvent::Left("b".into()))
        );
        assert_eq!(t.departed_state("b"), MemberState::Left);
    }

    #[test]
    fn leaving_flag_carried_by_the_departure_itself_counts() {
        let mut t = Tracker::new("me".into());
        t.apply(notice(Change::Joined, "b", 2, 100, false));
        assert_eq!(
            t.apply(notice(Change::Departed, "b", 2, 100, true)),
            Some(MembershipEvent::Left("b".into()))
        );
    }

    #[test]
    fn a_departure_is_reported_once() {
        let mut t = Tracker::new("me".into());
        t.apply(notice(Change::Joined, "b", 2, 100, false));
        assert!(
            t.apply(notice(Change::Departed, "b", 2, 100, false))
                .is_some()
        );
        assert_eq!(t.apply(notice(Change::Departed, "b", 2, 100, false)), None);
    }

    #[test]
    fn unknown_members_departing_are_not_reported() {
        let mut t = Tracker::new("me".into());
        assert_eq!(t.apply(notice(Change::Departed, "x", 2, 100, false)), None);
    }

    #[test]
    fn metadata_changes_are_updates() {
        let mut t = Tracker::new("me".into());
        t.apply(notice(Change::Joined, "b", 2, 100, false));
        let Some(MembershipEvent::Updated(info)) =
            t.apply(notice(Change::Updated, "b", 2, 200, false))
        else {
            panic!("expected an update");
        };
        assert_eq!(info.meta.vnodes, 200);
        // An update for a member never seen counts as its join.
        assert_eq!(
            t.apply(notice(Change::Updated, "c", 3, 100, false)),
            Some(joined("c", 3, 100))
        );
    }

    #[test]
    fn a_restarted_member_joins_again_and_forgets_its_old_flag() {
        let mut t = Tracker::new("me".into());
        t.apply(notice(Change::Joined, "b", 2, 100, false));
        t.apply(notice(Change::Updated, "b", 2, 100, true));
        t.apply(notice(Change::Departed, "b", 2, 100, true));
        // Same id, new port.
        assert_eq!(
            t.apply(notice(Change::Joined, "b", 9, 100, false)),
            Some(joined("b", 9, 100))
        );
        assert_eq!(
            t.apply(notice(Change::Departed, "b", 9, 100, false)),
            Some(MembershipEvent::Failed("b".into()))
        );
    }

    #[test]
    fn a_member_back_as_another_incarnation_before_it_departed_restarted() {
        let mut t = Tracker::new("me".into());
        t.apply(notice(Change::Joined, "b", 2, 100, false));
        let mut again = notice(Change::Updated, "b", 2, 100, false);
        let restarted = NodeMeta {
            incarnation: 7,
            ..meta(100)
        };
        again.meta = WireMeta {
            meta: restarted,
            leaving: false,
        }
        .encode()
        .unwrap();
        for change in [Change::Updated, Change::Joined] {
            let mut notice = again.clone();
            notice.change = change;
            // Reported once: the second notice carries the incarnation already known.
            let expected = (change == Change::Updated).then(|| {
                MembershipEvent::Restarted(MemberInfo {
                    id: "b".into(),
                    gossip_addr: SocketAddr::from(([127, 0, 0, 1], 2)),
                    meta: restarted,
                    state: MemberState::Alive,
                })
            });
            assert_eq!(t.apply(notice), expected);
        }
    }

    #[test]
    fn undecodable_metadata_is_ignored() {
        let mut t = Tracker::new("me".into());
        let mut n = notice(Change::Joined, "b", 2, 100, false);
        n.meta = b"not hive".to_vec();
        assert_eq!(t.apply(n), None);
    }

    #[test]
    fn failed_members_are_retried_until_the_timeout_then_forgotten() {
        let timeout = Duration::from_secs(60);
        let mut t = Tracker::new("me".into());
        for (id, port) in [("b", 2), ("c", 3), ("d", 4)] {
            t.apply(notice(Change::Joined, id, port, 100, false));
        }
        t.apply(notice(Change::Departed, "b", 2, 100, false));
        t.apply(notice(Change::Updated, "c", 3, 100, true));
        t.apply(notice(Change::Departed, "c", 3, 100, true));
        // A member that left is not retried.
        let now = Instant::now();
        assert_eq!(
            t.reconnects(now, timeout),
            Reconnects {
                retry: vec![("b".into(), SocketAddr::from(([127, 0, 0, 1], 2)))],
                forgotten: vec![],
            }
        );
        assert_eq!(
            t.reconnects(now + timeout, timeout),
            Reconnects {
                retry: vec![],
                forgotten: vec!["b".into(), "c".into()],
            }
        );
        assert_eq!(t.reconnects(now + timeout, timeout), Reconnects::default());
        assert_eq!(t.len(), 1, "only the live member is left");
    }

    #[test]
    fn a_failed_member_that_comes_back_is_no_longer_retried() {
        let mut t = Tracker::new("me".into());
        t.apply(notice(Change::Joined, "b", 2, 100, false));
        t.apply(notice(Change::Departed, "b", 2, 100, false));
        t.apply(notice(Change::Joined, "b", 2, 100, false));
        let reconnects = t.reconnects(Instant::now(), Duration::from_secs(60));
        assert_eq!(reconnects, Reconnects::default());
    }
}
