//! The cluster driver: a state machine that turns membership events into
//! views and moves data to match them.
//!
//! [`Driver`] holds the driver's state — the settled view, the debounce
//! deadline, the rebalance in flight, the agreement and settlement being
//! awaited, tombstone burials, the last heartbeat — and has one method per
//! event: a membership change ([`Driver::on_event`]), the debounce elapsed
//! ([`Driver::on_debounce_elapsed`]), every member seen with the view
//! ([`Driver::on_agreed`]) or settled on it ([`Driver::on_settled`]), a
//! rebalance done ([`Driver::on_rebalance_done`]), the heartbeat
//! ([`Driver::on_heartbeat`]) and the housekeeping tick
//! ([`Driver::on_housekeeping`]). [`Driver::run`] only waits for the next
//! event and calls its method.
//!
//! It is generic over the peer client and over where a new incarnation is
//! announced ([`Announce`]), so the same driver runs over gRPC and memberlist
//! in a node, and over the in-memory network with scripted membership events
//! under `tokio::time::pause()` in the fault scenarios (`driver_tests.rs`).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use hive_membership::{MemberInfo, MemberState, Membership, MembershipEvent};
use hive_transport::PeerClient;
use parking_lot::RwLock;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::MemberReport;
use crate::rebalance;
use crate::shared::Shared;
use crate::tombstones::Burials;
use crate::view::{Peer, View};

/// How often a node that finished moving data asks the other members whether
/// they have too (then the earlier views can be forgotten).
const SETTLED_POLL: Duration = Duration::from_millis(100);

/// How often a node whose view changed asks the other members whether they
/// have it too. Operations on keys changing primary wait for that agreement,
/// so it is asked often, and only while a change is new.
const AGREE_POLL: Duration = Duration::from_millis(10);

/// Pause before the first retry of a rebalance that did not complete; it
/// doubles with every failure in a row, up to [`REBALANCE_RETRY_MAX`].
const REBALANCE_RETRY: Duration = Duration::from_millis(200);
const REBALANCE_RETRY_MAX: Duration = Duration::from_secs(2);

/// How often the driver notes that it is running: a longer gap means this
/// process was paused (SIGSTOP, a VM freeze) — see [`Timing::away_after`].
const HEARTBEAT: Duration = Duration::from_millis(100);

/// How long a node waits for memberlist to gossip its renewed incarnation
/// before the driver goes on (it spreads anyway).
const RENEW_WAIT: Duration = Duration::from_millis(500);

/// How long a leaving node waits for memberlist to confirm its leave was
/// gossiped.
const LEAVE_WAIT: Duration = Duration::from_secs(2);

/// How long a leaving node waits for every other member to see it leave
/// before its last hand-off.
const LEAVE_AGREEMENT: Duration = Duration::from_secs(3);

/// Hand-off passes a leaving node makes at most: each sends what arrived
/// since the previous one.
const HANDOFF_PASSES: usize = 5;

/// What this node knows of each member, by id, for status reports.
pub(crate) type Roster = Arc<RwLock<BTreeMap<String, MemberReport>>>;

/// The driver's clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) debounce: Duration,
    pub(crate) tombstone_retention: Duration,
    /// A pause of the driver this long means peers may have declared this
    /// node failed (their failure detection time) and gone on without it:
    /// it then comes back as a new incarnation ([`Driver::on_heartbeat`]).
    pub(crate) away_after: Duration,
    /// A node away longer than this was forgotten by its peers, which may
    /// have dropped the tombstones that hide its old copies: it rejoins empty.
    pub(crate) reconnect_timeout: Duration,
}

/// Where this node tells the other members about itself: that it is a new
/// incarnation of itself, or that it leaves.
pub(crate) trait Announce: Send + Sync + 'static {
    /// Tells the other members that this node now runs as `incarnation`.
    fn renew_incarnation(&self, incarnation: u64) -> impl Future<Output = ()> + Send;

    /// Tells the other members that this node leaves.
    fn leave(&self) -> impl Future<Output = ()> + Send;
}

impl Announce for Arc<Membership> {
    async fn renew_incarnation(&self, incarnation: u64) {
        if let Err(err) = Membership::renew_incarnation(self, incarnation, RENEW_WAIT).await {
            tracing::warn!(%err, "could not advertise the new incarnation");
        }
    }

    async fn leave(&self) {
        if let Err(err) = Membership::leave(self, LEAVE_WAIT).await {
            tracing::warn!(%err, "leave not confirmed");
        }
    }
}

/// A rebalance (or a housekeeping pass) in flight, with the view it targets.
type Rebalancing = Pin<Box<dyn Future<Output = (Arc<View>, Result<(), String>)> + Send>>;

/// Waiting for every member to finish moving data for a view; yields the
/// view's epoch.
type Settling = Pin<Box<dyn Future<Output = u64> + Send>>;

/// Waiting for every member to have a view (then keys move to their new
/// primaries); yields that view.
type Agreeing = Pin<Box<dyn Future<Output = Arc<View>> + Send>>;

/// What woke the driver.
enum Wake {
    Stopped,
    Heartbeat,
    Housekeeping,
    Event(MembershipEvent),
    DebounceElapsed,
    Agreed(Arc<View>),
    Settled(u64),
    RebalanceDone(Arc<View>, Result<(), String>),
}

/// The driver's state; see the module documentation.
pub(crate) struct Driver<C: PeerClient, A: Announce> {
    shared: Arc<Shared<C>>,
    roster: Roster,
    announce: A,
    timing: Timing,
    /// The view whose rebalance finished last: the next one moves data from it.
    settled: Arc<View>,
    /// When the next rebalance starts, once the view stopped changing.
    due: Option<Instant>,
    running: Option<Rebalancing>,
    /// Keys move to new primaries once every member has the view...
    agreeing: Agreeing,
    /// ...and the earlier views are forgotten once every member settled on it.
    settling: Option<Settling>,
    /// Pause before retrying a rebalance that did not complete.
    retry: Duration,
    burials: Burials,
    last_beat: Instant,
}

impl<C: PeerClient, A: Announce> Driver<C, A> {
    /// Returns the driver of a node that has just joined with the view
    /// [`joining_view`] made.
    pub(crate) fn new(
        shared: Arc<Shared<C>>,
        roster: Roster,
        announce: A,
        timing: Timing,
        settled: Arc<View>,
    ) -> Self {
        let agreeing = agree(&shared);
        let settling = settle(&shared, &settled);
        Self {
            shared,
            roster,
            announce,
            timing,
            settled,
            due: None,
            running: None,
            agreeing,
            settling,
            retry: REBALANCE_RETRY,
            burials: Burials::new(timing.tombstone_retention),
            last_beat: Instant::now(),
        }
    }

    /// Runs until `stop` fires or `events` ends: waits for the next event and
    /// hands it to its method.
    pub(crate) async fn run<E>(mut self, mut events: E, stop: CancellationToken)
    where
        E: Stream<Item = MembershipEvent> + Unpin,
    {
        let housekeeping_every =
            (self.timing.tombstone_retention / 4).max(Duration::from_millis(10));
        let mut housekeeping = tokio::time::interval(housekeeping_every);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.last_beat = Instant::now();
        loop {
            let idle = self.running.is_none() && self.due.is_none();
            let debounce_due = self.due.filter(|_| self.running.is_none());
            let (running, settling, agreeing) =
                (&mut self.running, &mut self.settling, &mut self.agreeing);
            let wake = tokio::select! {
                () = stop.cancelled() => Wake::Stopped,
                _ = heartbeat.tick() => Wake::Heartbeat,
                _ = housekeeping.tick(), if idle => Wake::Housekeeping,
                event = events.next() => event.map_or(Wake::Stopped, Wake::Event),
                () = sleep_until(debounce_due), if debounce_due.is_some() => Wake::DebounceElapsed,
                view = agreeing => Wake::Agreed(view),
                epoch = async { settling.as_mut().expect("guarded").await }, if settling.is_some() => {
                    Wake::Settled(epoch)
                }
                (target, result) = async { running.as_mut().expect("guarded").await }, if running.is_some() => {
                    Wake::RebalanceDone(target, result)
                }
            };
            match wake {
                Wake::Stopped => return,
                Wake::Heartbeat => self.on_heartbeat(Instant::now()).await,
                Wake::Housekeeping => self.on_housekeeping(Instant::now()),
                Wake::Event(event) => self.on_event(event),
                Wake::DebounceElapsed => self.on_debounce_elapsed(),
                Wake::Agreed(view) => self.on_agreed(view),
                Wake::Settled(epoch) => self.on_settled(epoch),
                Wake::RebalanceDone(target, result) => self.on_rebalance_done(target, result),
            }
        }
    }

    /// The heartbeat: notes that the driver runs, schedules a housekeeping
    /// pass when stray replicas arrived, and — if the last beat is long
    /// enough ago that peers may have declared this node failed — makes this
    /// node a new incarnation of itself (emptied first if it was away longer
    /// than `reconnect_timeout`).
    pub(crate) async fn on_heartbeat(&mut self, now: Instant) {
        let gap = now.saturating_duration_since(self.last_beat);
        self.last_beat = now;
        // Replicas of keys this node does not own arrived (writes made while
        // their primary remembered earlier views): a housekeeping pass moves
        // them to the owners.
        if self.shared.leftovers.swap(false, Ordering::Relaxed) && self.due.is_none() {
            self.due = Some(now + self.timing.debounce);
        }
        if gap >= self.timing.away_after {
            tracing::warn!(node = %self.shared.id, ?gap, "this process was paused long enough to be declared failed; rejoining as a new incarnation");
            if gap >= self.timing.reconnect_timeout {
                tracing::warn!(node = %self.shared.id, "away longer than reconnect_timeout: rejoining empty");
                self.shared.store.clear();
            }
            self.reincarnate().await;
            self.view_changed();
            self.last_beat = Instant::now();
        }
        // Only now: until the new incarnation took over, operations on this
        // node's keys wait (`Route::Paused`).
        self.shared.beat();
    }

    /// Housekeeping while idle: copies left behind (a drop that found a newer
    /// write, a replica written by a primary on an older view) go to their
    /// owners, then old tombstones are collected — only after every leftover
    /// went out, so none can outlive its tombstone.
    pub(crate) fn on_housekeeping(&mut self, now: Instant) {
        self.burials
            .open(now, self.shared.store.next_tombstone_epoch());
        let purgeable_before = self.burials.purgeable_before(now);
        let (shared, view) = (self.shared.clone(), self.settled.clone());
        self.running = Some(Box::pin(async move {
            let result = rebalance::run(&shared, &view, &view).await;
            if result.is_ok()
                && let Some(before) = purgeable_before
            {
                collect_tombstones(&shared, before);
            }
            (view, result)
        }));
    }

    /// A membership change: the view follows it, and a rebalance is due
    /// after the debounce. An event that changes no member (memberlist also
    /// reports the members it already knew) neither moves data nor makes
    /// this node forget where keys were before.
    pub(crate) fn on_event(&mut self, event: MembershipEvent) {
        let shared = &self.shared;
        match &event {
            MembershipEvent::Joined(member) => shared.member_back(peer_of(member)),
            MembershipEvent::Failed(id) => {
                shared.mark_failed(id, true);
            }
            MembershipEvent::Forgotten(id) => {
                shared.mark_failed(id, false);
            }
            MembershipEvent::Updated(_)
            | MembershipEvent::Restarted(_)
            | MembershipEvent::Left(_) => {}
        }
        // A departed member's connection and queues go; so do those of a
        // restarted one, which lead to a process that is gone, and those of
        // a member that moved to another address.
        let gone = match &event {
            MembershipEvent::Left(id) | MembershipEvent::Failed(id) => Some(id.as_str()),
            MembershipEvent::Restarted(member) => Some(member.id.as_str()),
            MembershipEvent::Updated(member)
                if shared
                    .view()
                    .peer(&member.id)
                    .is_some_and(|peer| peer.rpc_addr != member.meta.rpc_addr) =>
            {
                Some(member.id.as_str())
            }
            _ => None,
        };
        if let Some(id) = gone
            && let Some(peer) = shared.view().peer(id)
        {
            shared.forget_peer(peer.rpc_addr);
        }
        if let MembershipEvent::Restarted(member) = &event {
            tracing::info!(node = %shared.id, member = %member.id, "member restarted as a new incarnation; refilling it");
        }
        if let Some(view) = apply_event(&shared.view(), &self.roster, event) {
            shared.set_view(view);
            self.view_changed();
        }
    }

    /// The view stopped changing for the debounce: move data to match it.
    pub(crate) fn on_debounce_elapsed(&mut self) {
        self.due = None;
        let target = self.shared.view();
        let (shared, from) = (self.shared.clone(), self.settled.clone());
        self.running = Some(Box::pin(async move {
            let result = rebalance::run(&shared, &from, &target).await;
            (target, result)
        }));
    }

    /// Every member was seen with `view`: if it is still current, keys whose
    /// primary changed move to their new primaries.
    pub(crate) fn on_agreed(&mut self, view: Arc<View>) {
        self.agreeing = Box::pin(std::future::pending());
        if self.shared.view().digest() == view.digest() {
            self.shared.set_agreed(view);
        }
    }

    /// Every member finished moving data for the view of `epoch`: if it is
    /// still current, every key is at its owners and the earlier views go.
    pub(crate) fn on_settled(&mut self, epoch: u64) {
        self.settling = None;
        if self.shared.view().epoch() == epoch {
            self.shared.forget_earlier();
            tracing::debug!(node = %self.shared.id, epoch, "every member settled; earlier views forgotten");
        }
    }

    /// A rebalance towards `target` ended: on success `target` is settled
    /// here (and a newer view, if any, is due at once); on failure it is
    /// tried again after a growing pause.
    pub(crate) fn on_rebalance_done(&mut self, target: Arc<View>, result: Result<(), String>) {
        self.running = None;
        match result {
            Ok(()) => {
                self.retry = REBALANCE_RETRY;
                self.shared
                    .settled_epoch
                    .store(target.epoch(), Ordering::Release);
                self.shared.notify();
                self.settled = target;
                if self.shared.view().epoch() != self.settled.epoch() && self.due.is_none() {
                    self.due = Some(Instant::now());
                }
                if self.settling.is_none() {
                    self.settling = settle(&self.shared, &self.settled);
                }
            }
            Err(reason) => {
                tracing::warn!(node = %self.shared.id, %reason, "rebalance incomplete; retrying");
                self.due = Some(Instant::now() + self.retry);
                self.retry = (self.retry * 2).min(REBALANCE_RETRY_MAX);
            }
        }
    }

    /// The view changed: a rebalance is due after the debounce, agreement on
    /// the new view is awaited, and settlement on the old one no longer is.
    fn view_changed(&mut self) {
        self.due = Some(Instant::now() + self.timing.debounce);
        self.agreeing = agree(&self.shared);
        self.settling = None;
    }

    /// Makes this node a new incarnation of itself after a pause long enough
    /// for peers to have declared it failed and gone on without it: deleted
    /// keys it still holds, writes it missed. Like a node that restarts, it
    /// then runs its keys only once every member sees the new incarnation,
    /// catching each up from the other owners first, and the other owners
    /// refill it; what it holds is offered to them version by version, where
    /// newer versions and tombstones win.
    async fn reincarnate(&mut self) {
        let shared = &self.shared;
        let incarnation = new_incarnation();
        let view = shared.view();
        let Some(me) = view.peer(&shared.id) else {
            return;
        };
        let renewed = view.with(Peer {
            incarnation,
            ..me.clone()
        });
        let view = shared.set_view(renewed);
        let before = Arc::new(view.without(&shared.id));
        shared.set_agreed(before.clone());
        shared.remember(before);
        self.announce.renew_incarnation(incarnation).await;
    }
}

/// Leaves gracefully (spec: cluster.md G2), once the driver stopped (its
/// rebalances would race the hand-off): hands every key to its owners
/// without this node, tells the others it leaves, and hands off what was
/// written meanwhile.
pub(crate) async fn leave<C: PeerClient, A: Announce>(shared: &Shared<C>, announce: &A) {
    let current = shared.view();
    let without = current.without(&shared.id);
    // 1. Stop being a primary: client operations are forwarded to the new
    //    owners (retried until they see this node leave). Replicas and
    //    transfers are still taken — peers count this node an owner until
    //    they see it leave, and refusing would fail their writes — and
    //    handed off below with the rest. Until then this node answers the
    //    new owners' fetches for keys they have not received (their
    //    catch-up), so they build on the latest state.
    shared.set_view(without.clone());
    // 2. Leave: the others route every key to its new owners.
    announce.leave().await;
    //    Once every other member's view is without this node, nobody sends
    //    it replicas any more: what it holds after that is final.
    let others_agree = shared.wait_for_members(&without, false, AGREE_POLL);
    if tokio::time::timeout(LEAVE_AGREEMENT, others_agree)
        .await
        .is_err()
    {
        tracing::warn!(node = %shared.id, "not every member saw the leave in time; handing off anyway");
    }
    // 3. Hand everything off, dropping each copy its receivers confirmed;
    //    again while copies remain (a replica that arrived after its key
    //    went out is kept, and goes in the next pass).
    if without.is_empty() {
        return;
    }
    for pass in 1..=HANDOFF_PASSES {
        if let Err(reason) = rebalance::run(shared, &current, &without).await {
            tracing::warn!(node = %shared.id, pass, %reason, "hand-off pass incomplete");
            tokio::time::sleep(REBALANCE_RETRY).await;
        }
        let left = shared.store.len() + shared.store.tombstone_count();
        if left == 0 {
            break;
        }
        if pass == HANDOFF_PASSES {
            tracing::warn!(node = %shared.id, left, "hand-off incomplete: copies left behind");
        }
    }
}

/// Makes the view of a node that has just joined: every live member in
/// `members` (this node among them), recorded in `roster`. Until every member
/// sees this node, its keys are run by the members that were there before it,
/// so that earlier view is the agreed one, and the one keys are caught up
/// from.
pub(crate) fn joining_view<C: PeerClient>(
    shared: &Shared<C>,
    roster: &Roster,
    members: impl IntoIterator<Item = MemberInfo>,
) -> Arc<View> {
    let mut view = View::new(shared.view().replication_factor());
    for member in members {
        if member.state == MemberState::Alive {
            view = view.with(peer_of(&member));
        }
        roster.write().insert(member.id.clone(), report_of(&member));
    }
    let view = shared.set_view(view);
    let before = Arc::new(view.without(&shared.id));
    shared.set_agreed(before.clone());
    shared.remember(before);
    shared.settled_epoch.store(view.epoch(), Ordering::Release);
    view
}

/// Starts waiting for every member to have the current view.
fn agree<C: PeerClient>(shared: &Arc<Shared<C>>) -> Agreeing {
    let (shared, view) = (shared.clone(), shared.view());
    Box::pin(async move {
        shared.wait_for_members(&view, false, AGREE_POLL).await;
        view
    })
}

/// Starts waiting for every member to settle on `view`, if this node still
/// remembers earlier views (and so still fetches keys it does not know).
fn settle<C: PeerClient>(shared: &Arc<Shared<C>>, view: &Arc<View>) -> Option<Settling> {
    if !shared.remembers_earlier() || shared.view().epoch() != view.epoch() {
        return None;
    }
    let (shared, view) = (shared.clone(), view.clone());
    Some(Box::pin(async move {
        shared.wait_for_members(&view, true, SETTLED_POLL).await;
        view.epoch()
    }))
}

/// Drops the tombstones buried in epochs before `before` — at least
/// `tombstone_retention` ago — unless an older copy could still come back
/// (spec: cluster.md G5, `tombstones.rs`): a member is away (failed, not yet
/// forgotten), a rebalance is pending, or some member has not settled on this
/// node's view yet.
fn collect_tombstones<C: PeerClient>(shared: &Shared<C>, before: u64) {
    if shared.rebalance_pending.load(Ordering::Relaxed) != 0
        || shared.any_member_away()
        || !shared.is_agreed()
        || shared.remembers_earlier()
    {
        return;
    }
    let dropped = shared.store.purge_tombstones(before);
    if dropped > 0 {
        tracing::debug!(node = %shared.id, dropped, "tombstones collected");
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Returns the view after `event` (`None` if the members did not change), and
/// records the member's state.
fn apply_event(view: &View, roster: &Roster, event: MembershipEvent) -> Option<View> {
    match event {
        // A restarted member keeps its id and its place on the ring, but as
        // another incarnation it is a new owner of its keys: the view (and its
        // digest) changes, the rebalance refills it (`plan_at`), and it runs
        // its keys only once every member sees it (`Shared::route`).
        MembershipEvent::Joined(member)
        | MembershipEvent::Updated(member)
        | MembershipEvent::Restarted(member) => {
            roster.write().insert(member.id.clone(), report_of(&member));
            let peer = peer_of(&member);
            (view.peer(&peer.id) != Some(&peer)).then(|| view.with(peer))
        }
        MembershipEvent::Left(id) => {
            if let Some(report) = roster.write().get_mut(&id) {
                report.state = MemberState::Left;
            }
            view.contains(&id).then(|| view.without(&id))
        }
        MembershipEvent::Failed(id) => {
            if let Some(report) = roster.write().get_mut(&id) {
                report.state = MemberState::Dead;
            }
            view.contains(&id).then(|| view.without(&id))
        }
        // Departed long ago: no longer listed, so the roster stays bounded.
        MembershipEvent::Forgotten(id) => {
            roster.write().remove(&id);
            view.contains(&id).then(|| view.without(&id))
        }
    }
}

fn peer_of(member: &MemberInfo) -> Peer {
    Peer {
        id: member.id.clone(),
        rpc_addr: member.meta.rpc_addr,
        vnodes: member.meta.vnodes,
        incarnation: member.meta.incarnation,
    }
}

fn report_of(member: &MemberInfo) -> MemberReport {
    MemberReport {
        id: member.id.clone(),
        gossip_addr: member.gossip_addr,
        rpc_addr: member.meta.rpc_addr,
        state: member.state,
        ring_share: 0.0,
    }
}

/// Returns a number that names this start of the node (its boot nonce): the
/// clock's nanoseconds mixed with a random draw, never 0 (which peers read as
/// "did not advertise one").
pub(crate) fn new_incarnation() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    (nanos ^ fastrand::u64(..)).max(1)
}
