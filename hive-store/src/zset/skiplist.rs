//! Order-statistics skip list (Redis's `zskiplist`) backing sorted sets: every link
//! carries a span, so rank lookups and rank ranges take O(log n) — hand-written
//! because no crate offers that; nodes live in an arena linked by `u32` indices,
//! which keeps it safe Rust and more cache-friendly than a node per allocation.
//!
//! Elements are ordered by ascending score, ties broken by byte-wise member order.
//! Scores compare with `partial_cmp`, so `-0.0 == 0.0` (as in Redis); a NaN, which
//! callers reject before it gets here, compares equal to everything instead of
//! panicking. Members are unique by contract: the caller keeps a member → score map
//! and removes the old `(score, member)` pair before inserting a new score.
//!
//! Ranks are 0-based in the API. Inside, as in Redis, a node's rank is 1-based (the
//! head sentinel has rank 0), and the span of a link is the rank distance it covers;
//! a link to the end spans to the last rank (`len`).

#![allow(
    dead_code,
    reason = "counts, lex ranges and pops serve the Redis commands (ZCOUNT, ZRANGEBYLEX, ZPOPMIN) that arrive with hived; they are tested here"
)]

use std::cmp::Ordering;
use std::fmt;
use std::iter::{FusedIterator, Rev};
use std::mem;

use bytes::Bytes;

/// Index meaning "no node": the end of a chain, or no previous element.
const NIL: u32 = u32::MAX;
/// Arena index of the head sentinel, which holds no element.
const HEAD: u32 = 0;
/// Maximum number of levels of a node (Redis's `ZSKIPLIST_MAXLEVEL`).
const MAX_LEVEL: usize = 32;
/// Fixed seed of the level generator: levels need only be unpredictable enough to
/// balance the list, and they never depend on the elements.
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
/// Multiplier of the xorshift64* generator.
const XORSHIFT_MULTIPLIER: u64 = 0x2545_F491_4F6C_DD1D;
/// Arena slots whose capacity is kept when the list empties (more is returned).
const RETAINED_SLOTS: usize = 8;

/// A forward link at one level: the next node and the rank distance to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    /// Arena index of the next node at this level, or [`NIL`].
    next: u32,
    /// Rank of `next` minus rank of this node (to `len` when `next` is [`NIL`]).
    span: u32,
}

impl Link {
    /// A link to the end of an empty list.
    const END: Link = Link { next: NIL, span: 0 };
}

/// An arena slot: a list node, the head sentinel, or a free slot.
///
/// Level 0 is stored inline: three nodes in four have no other level, so they need
/// no allocation besides their arena slot. A free slot has an empty member and no
/// upper levels, and chains to the next free slot through `base.next`.
#[derive(Debug, Clone)]
struct Node {
    /// The member (empty in the head and in free slots).
    member: Bytes,
    /// The score.
    score: f64,
    /// Arena index of the previous element, or [`NIL`] for the first one.
    backward: u32,
    /// The link at level 0.
    base: Link,
    /// The links at levels 1 and up.
    upper: Box<[Link]>,
}

impl Node {
    /// Returns an unlinked node with `height` levels.
    fn new(score: f64, member: Bytes, height: usize) -> Node {
        Node {
            member,
            score,
            backward: NIL,
            base: Link::END,
            upper: vec![Link::END; height.saturating_sub(1)].into_boxed_slice(),
        }
    }

    /// Returns the number of levels of this node.
    fn height(&self) -> usize {
        1 + self.upper.len()
    }

    /// Returns the link at `level`, which must be below [`Node::height`].
    fn link(&self, level: usize) -> Link {
        match level.checked_sub(1) {
            None => self.base,
            Some(upper) => self.upper[upper],
        }
    }

    /// Returns the link at `level`, which must be below [`Node::height`], to change it.
    fn link_mut(&mut self, level: usize) -> &mut Link {
        match level.checked_sub(1) {
            None => &mut self.base,
            Some(upper) => &mut self.upper[upper],
        }
    }

    /// Returns how this node's `(score, member)` compares with the given one.
    fn cmp_key(&self, score: f64, member: &[u8]) -> Ordering {
        cmp_scores(self.score, score).then_with(|| self.member.as_ref().cmp(member))
    }

    /// Returns this node's element as the API hands it out.
    fn entry(&self) -> (&Bytes, f64) {
        (&self.member, self.score)
    }
}

/// Returns how two scores compare: `-0.0 == 0.0`, and a NaN equals everything.
fn cmp_scores(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// Returns whether `score` lies below the lower bound `min` (exclusive or not).
fn below_min(score: f64, min: f64, exclusive: bool) -> bool {
    match cmp_scores(score, min) {
        Ordering::Less => true,
        Ordering::Equal => exclusive,
        Ordering::Greater => false,
    }
}

/// Returns whether `score` lies at or below the upper bound `max` (exclusive or not).
fn within_max(score: f64, max: f64, exclusive: bool) -> bool {
    match cmp_scores(score, max) {
        Ordering::Less => true,
        Ordering::Equal => !exclusive,
        Ordering::Greater => false,
    }
}

/// Returns `rank` as an internal `u32` rank, saturating (callers pass ranks below `len`).
fn to_rank(rank: usize) -> u32 {
    u32::try_from(rank).unwrap_or(u32::MAX)
}

/// One end of a lexicographic range over members (Redis `ZRANGEBYLEX` syntax:
/// `-`, `+`, `[member`, `(member`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LexBound<'a> {
    /// Below every member (`-`).
    NegInf,
    /// Above every member (`+`).
    PosInf,
    /// This member, included (`[member`).
    Inclusive(&'a [u8]),
    /// This member, excluded (`(member`).
    Exclusive(&'a [u8]),
}

impl LexBound<'_> {
    /// Returns whether `member` lies below this bound taken as a range's minimum.
    fn is_below_min(self, member: &[u8]) -> bool {
        match self {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Inclusive(min) => member < min,
            LexBound::Exclusive(min) => member <= min,
        }
    }

    /// Returns whether `member` lies at or below this bound taken as a range's maximum.
    fn is_within_max(self, member: &[u8]) -> bool {
        match self {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Inclusive(max) => member <= max,
            LexBound::Exclusive(max) => member < max,
        }
    }
}

/// Where a descent stopped at every level: the predecessors of a position and their
/// ranks. Levels the list does not use hold the head at rank 0.
#[derive(Debug)]
struct Path {
    /// `preds[i]` is the last node at level `i` the descent moved to.
    preds: [u32; MAX_LEVEL],
    /// `ranks[i]` is the rank of `preds[i]`.
    ranks: [u32; MAX_LEVEL],
}

/// A skip list of `(score, member)` elements with rank spans (an order-statistics
/// structure), ordered by score then member bytes.
///
/// Insert, remove, rank and rank/score/lex range lookups take O(log n) expected;
/// iterating a range adds O(1) per element. Arena slots freed by removals are reused
/// by later inserts; the arena is only shrunk when the list becomes empty.
#[derive(Clone)]
pub(crate) struct SkipList {
    /// Arena of nodes; slot [`HEAD`] is the head sentinel, with [`MAX_LEVEL`] levels.
    nodes: Vec<Node>,
    /// First free arena slot, or [`NIL`].
    free_head: u32,
    /// Last element, or [`NIL`] when empty.
    tail: u32,
    /// Number of elements.
    len: u32,
    /// Number of levels in use (at least 1); the head's higher links are [`Link::END`].
    level: usize,
    /// Upper-level links allocated across the arena (for [`SkipList::heap_bytes`]).
    upper_links: usize,
    /// State of the xorshift64* generator of node levels.
    rng: u64,
}

impl SkipList {
    /// Returns an empty skip list.
    pub(crate) fn new() -> Self {
        SkipList {
            nodes: vec![Node::new(0.0, Bytes::new(), MAX_LEVEL)],
            free_head: NIL,
            tail: NIL,
            len: 0,
            level: 1,
            upper_links: MAX_LEVEL - 1,
            rng: SEED,
        }
    }

    /// Returns the number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Returns whether the list holds no element.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts `member` with `score`, in O(log n).
    ///
    /// `member` must not be in the list already (under any score): the caller removes
    /// the old element first, or calls [`SkipList::update_score`].
    ///
    /// # Panics
    ///
    /// Panics if the list already holds `u32::MAX - 1` elements (hundreds of GiB).
    pub(crate) fn insert(&mut self, score: f64, member: Bytes) {
        let height = self.random_level();
        let id = self.alloc(Node::new(score, member, height));
        self.link_in(id);
    }

    /// Removes the element with this score and member, in O(log n). Returns whether it
    /// was present.
    pub(crate) fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        match self.find(score, member) {
            Some((id, path)) => {
                self.unlink(id, &path);
                self.release(id);
                true
            }
            None => false,
        }
    }

    /// Moves the element `(old_score, member)` to `new_score`, in O(log n), keeping its
    /// node and member bytes. Returns false (and changes nothing) if it was not present.
    pub(crate) fn update_score(&mut self, old_score: f64, member: &[u8], new_score: f64) -> bool {
        let Some((id, path)) = self.find(old_score, member) else {
            return false;
        };
        if self.stays_in_place(id, new_score) {
            self.node_mut(id).score = new_score;
        } else {
            self.unlink(id, &path);
            self.node_mut(id).score = new_score;
            self.link_in(id);
        }
        true
    }

    /// Returns the 0-based rank of the element with exactly this score and member, in
    /// O(log n), or `None` if it is not present.
    pub(crate) fn rank(&self, score: f64, member: &[u8]) -> Option<usize> {
        let (id, rank) = self.locate(|node, _| node.cmp_key(score, member).is_le());
        let found = id != HEAD && self.node(id).cmp_key(score, member).is_eq();
        found.then(|| rank as usize - 1)
    }

    /// Returns the element at 0-based `rank`, in O(log n), or `None` if `rank >= len`.
    pub(crate) fn get_by_rank(&self, rank: usize) -> Option<(&Bytes, f64)> {
        if rank >= self.len() {
            return None;
        }
        let target = to_rank(rank) + 1;
        let (id, _) = self.locate(|_, r| r <= target);
        Some(self.node(id).entry())
    }

    /// Returns the elements of 0-based ranks `start..=stop_inclusive`, ascending, in
    /// O(log n) plus O(1) per element. `stop_inclusive` is clamped to `len - 1`; the
    /// range is empty if `start > stop_inclusive` or `start >= len`.
    pub(crate) fn range_by_rank(&self, start: usize, stop_inclusive: usize) -> Iter<'_> {
        let len = self.len();
        if start >= len || start > stop_inclusive {
            return Iter::empty(self);
        }
        // 1-based, the range is the ranks after `start` through `stop + 1`.
        let (start, stop) = (to_rank(start), to_rank(stop_inclusive.min(len - 1)) + 1);
        self.iter_between(
            self.locate(|_, r| r <= start),
            self.locate(|_, r| r <= stop),
        )
    }

    /// Returns the elements of ranks `start..=stop_inclusive` counted from the highest
    /// element (rank 0 is the maximum), descending, in O(log n) plus O(1) per element.
    /// Clamped and empty as in [`SkipList::range_by_rank`].
    pub(crate) fn rev_range_by_rank(&self, start: usize, stop_inclusive: usize) -> Rev<Iter<'_>> {
        let len = self.len();
        if start >= len || start > stop_inclusive {
            return Iter::empty(self).rev();
        }
        let stop = stop_inclusive.min(len - 1);
        self.range_by_rank(len - 1 - stop, len - 1 - start).rev()
    }

    /// Returns the number of elements whose score lies between `min` and `max` (each
    /// bound exclusive or not, as Redis's `(`), in O(log n). Bounds may be infinite; an
    /// inverted range counts 0.
    pub(crate) fn count_in_score_range(
        &self,
        min: f64,
        min_excl: bool,
        max: f64,
        max_excl: bool,
    ) -> usize {
        self.range_by_score(min, min_excl, max, max_excl).len()
    }

    /// Returns the elements whose score lies between `min` and `max` (each bound
    /// exclusive or not), ascending, in O(log n) plus O(1) per element. Empty when the
    /// range is empty or inverted.
    pub(crate) fn range_by_score(
        &self,
        min: f64,
        min_excl: bool,
        max: f64,
        max_excl: bool,
    ) -> Iter<'_> {
        let before = self.locate(|node, _| below_min(node.score, min, min_excl));
        let through = self.locate(|node, _| within_max(node.score, max, max_excl));
        self.iter_between(before, through)
    }

    /// Returns the elements whose score lies between `min` and `max` (each bound
    /// exclusive or not), descending, in O(log n) plus O(1) per element. Note the bound
    /// order, highest first, as in Redis's `ZREVRANGEBYSCORE`.
    pub(crate) fn rev_range_by_score(
        &self,
        max: f64,
        max_excl: bool,
        min: f64,
        min_excl: bool,
    ) -> Rev<Iter<'_>> {
        self.range_by_score(min, min_excl, max, max_excl).rev()
    }

    /// Returns the number of elements whose member lies between `min` and `max`, in
    /// O(log n). Meaningful when all scores are equal (Redis's `ZLEXCOUNT`); otherwise
    /// it counts along skip list order without misbehaving.
    pub(crate) fn count_in_lex_range(&self, min: LexBound<'_>, max: LexBound<'_>) -> usize {
        self.range_by_lex(min, max).len()
    }

    /// Returns the elements whose member lies between `min` and `max`, ascending, in
    /// O(log n) plus O(1) per element. Meaningful when all scores are equal (Redis's
    /// `ZRANGEBYLEX`); otherwise it yields a run of skip list order without
    /// misbehaving. Empty when the range is empty or inverted.
    pub(crate) fn range_by_lex(&self, min: LexBound<'_>, max: LexBound<'_>) -> Iter<'_> {
        let before = self.locate(|node, _| min.is_below_min(&node.member));
        let through = self.locate(|node, _| max.is_within_max(&node.member));
        self.iter_between(before, through)
    }

    /// Returns all elements, ascending (double-ended: `.rev()` gives them descending).
    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter {
            list: self,
            front: self.node(HEAD).base.next,
            back: self.tail,
            remaining: self.len(),
        }
    }

    /// Returns the lowest element, or `None` if the list is empty.
    pub(crate) fn first(&self) -> Option<(&Bytes, f64)> {
        self.iter().next()
    }

    /// Returns the highest element, or `None` if the list is empty.
    pub(crate) fn last(&self) -> Option<(&Bytes, f64)> {
        self.iter().next_back()
    }

    /// Removes and returns the lowest element, in O(log n), or `None` if empty.
    pub(crate) fn pop_first(&mut self) -> Option<(Bytes, f64)> {
        self.pop_rank(1)
    }

    /// Removes and returns the highest element, in O(log n), or `None` if empty.
    pub(crate) fn pop_last(&mut self) -> Option<(Bytes, f64)> {
        self.pop_rank(self.len)
    }

    /// Returns an estimate of the heap bytes this structure holds beyond member data:
    /// arena capacity × `size_of::<Node>()` plus the upper-level link arrays. It
    /// ignores allocator overhead and rounding; member bytes are the caller's to count.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * mem::size_of::<Node>() + self.upper_links * mem::size_of::<Link>()
    }

    /// Removes every element and returns the arena's memory (beyond a few slots).
    pub(crate) fn clear(&mut self) {
        self.nodes.truncate(1);
        self.nodes.shrink_to(RETAINED_SLOTS);
        let head = &mut self.nodes[HEAD as usize];
        head.base = Link::END;
        head.upper.fill(Link::END);
        self.upper_links = head.upper.len();
        self.free_head = NIL;
        self.tail = NIL;
        self.len = 0;
        self.level = 1;
    }

    /// Returns the node in arena slot `id`.
    fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize]
    }

    /// Returns the node in arena slot `id`, to change it.
    fn node_mut(&mut self, id: u32) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    /// Returns a random node height in `1..=MAX_LEVEL`, each level kept with
    /// probability 1/4 (as Redis), from a xorshift64* step.
    fn random_level(&mut self) -> usize {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        // The high bits are the best ones of xorshift64*: each pair is 00 with p = 1/4.
        let bits = x.wrapping_mul(XORSHIFT_MULTIPLIER);
        (1 + bits.leading_zeros() as usize / 2).min(MAX_LEVEL)
    }

    /// Puts `node` in a free arena slot (or a new one) and returns its index.
    fn alloc(&mut self, node: Node) -> u32 {
        self.upper_links += node.upper.len();
        if self.free_head != NIL {
            let id = self.free_head;
            self.free_head = self.node(id).base.next;
            *self.node_mut(id) = node;
            return id;
        }
        let id = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&id| id != NIL)
            .expect("skip list arena full: at most u32::MAX - 1 elements");
        self.nodes.push(node);
        id
    }

    /// Frees the slot of the unlinked node `id`, returning its element; resets the
    /// arena when the list has become empty.
    fn release(&mut self, id: u32) -> (Bytes, f64) {
        let free_head = self.free_head;
        let node = self.node_mut(id);
        let member = mem::take(&mut node.member);
        let score = node.score;
        let upper = mem::take(&mut node.upper);
        node.base = Link {
            next: free_head,
            span: 0,
        };
        node.backward = NIL;
        self.upper_links -= upper.len();
        self.free_head = id;
        if self.len == 0 {
            self.clear();
        }
        (member, score)
    }

    /// Descends from the head's top level, moving forward while `advance(next node,
    /// rank of next node)` holds, and returns where it stopped at each level.
    /// `advance` must hold for a prefix of the list (be monotone) for the result to
    /// mean "the last node for which it holds"; otherwise the result is still a
    /// consistent position.
    fn descend(&self, mut advance: impl FnMut(&Node, u32) -> bool) -> Path {
        let mut path = Path {
            preds: [HEAD; MAX_LEVEL],
            ranks: [0; MAX_LEVEL],
        };
        let (mut id, mut rank) = (HEAD, 0);
        for level in (0..self.level).rev() {
            loop {
                let link = self.node(id).link(level);
                if link.next == NIL || !advance(self.node(link.next), rank + link.span) {
                    break;
                }
                id = link.next;
                rank += link.span;
            }
            path.preds[level] = id;
            path.ranks[level] = rank;
        }
        path
    }

    /// Returns the last node for which the monotone `advance` holds (the head if none)
    /// and its rank.
    fn locate(&self, advance: impl FnMut(&Node, u32) -> bool) -> (u32, u32) {
        let path = self.descend(advance);
        (path.preds[0], path.ranks[0])
    }

    /// Returns the node with exactly this score and member, with its predecessors.
    fn find(&self, score: f64, member: &[u8]) -> Option<(u32, Path)> {
        let path = self.descend(|node, _| node.cmp_key(score, member).is_lt());
        let id = self.node(path.preds[0]).base.next;
        let found = id != NIL && self.node(id).cmp_key(score, member).is_eq();
        found.then_some((id, path))
    }

    /// Returns an iterator over the nodes after `before` through `through`, each given
    /// with its rank as [`SkipList::locate`] returns them; empty unless `through` comes
    /// later.
    fn iter_between(&self, before: (u32, u32), through: (u32, u32)) -> Iter<'_> {
        let remaining = through.1.saturating_sub(before.1) as usize;
        if remaining == 0 {
            return Iter::empty(self);
        }
        Iter {
            list: self,
            front: self.node(before.0).base.next,
            back: through.0,
            remaining,
        }
    }

    /// Returns whether node `id` keeps its position with score `score` (it is still
    /// above its predecessor and below its successor).
    fn stays_in_place(&self, id: u32, score: f64) -> bool {
        let node = self.node(id);
        let (prev, next) = (node.backward, node.base.next);
        (prev == NIL || self.node(prev).cmp_key(score, &node.member).is_lt())
            && (next == NIL || self.node(next).cmp_key(score, &node.member).is_gt())
    }

    /// Links the unlinked node `id` in at the position its score and member give.
    fn link_in(&mut self, id: u32) {
        let node = self.node(id);
        let (score, height) = (node.score, node.height());
        let path = self.descend(|other, _| other.cmp_key(score, &node.member).is_lt());
        debug_assert!(
            {
                let next = self.node(path.preds[0]).base.next;
                next == NIL || self.node(next).cmp_key(score, &node.member).is_ne()
            },
            "skip list: element inserted twice"
        );
        if height > self.level {
            let (len, used) = (self.len, self.level);
            let head = self.node_mut(HEAD);
            for level in used..height {
                head.link_mut(level).span = len;
            }
            self.level = height;
        }
        // Rank of the new node's predecessor; `ranks[level]` is at most that.
        let before = path.ranks[0];
        for level in 0..height {
            let pred = path.preds[level];
            let old = self.node(pred).link(level);
            let gap = before - path.ranks[level];
            *self.node_mut(id).link_mut(level) = Link {
                next: old.next,
                span: old.span - gap,
            };
            *self.node_mut(pred).link_mut(level) = Link {
                next: id,
                span: gap + 1,
            };
        }
        for level in height..self.level {
            self.node_mut(path.preds[level]).link_mut(level).span += 1;
        }
        let pred = path.preds[0];
        self.node_mut(id).backward = if pred == HEAD { NIL } else { pred };
        match self.node(id).base.next {
            NIL => self.tail = id,
            next => self.node_mut(next).backward = id,
        }
        self.len += 1;
    }

    /// Unlinks node `id`, whose predecessors at every level `path` holds; its slot
    /// stays allocated.
    fn unlink(&mut self, id: u32, path: &Path) {
        for level in 0..self.level {
            let pred = path.preds[level];
            let link = self.node(pred).link(level);
            let relinked = if link.next == id {
                let own = self.node(id).link(level);
                Link {
                    next: own.next,
                    span: link.span + own.span - 1,
                }
            } else {
                Link {
                    next: link.next,
                    span: link.span - 1,
                }
            };
            *self.node_mut(pred).link_mut(level) = relinked;
        }
        let node = self.node(id);
        let (next, prev) = (node.base.next, node.backward);
        match next {
            NIL => self.tail = prev,
            next => self.node_mut(next).backward = prev,
        }
        while self.level > 1 && self.node(HEAD).link(self.level - 1).next == NIL {
            let top = self.level - 1;
            *self.node_mut(HEAD).link_mut(top) = Link::END;
            self.level = top;
        }
        self.len -= 1;
    }

    /// Removes and returns the element at 1-based `rank`, or `None` if there is none.
    fn pop_rank(&mut self, rank: u32) -> Option<(Bytes, f64)> {
        if rank == 0 || rank > self.len {
            return None;
        }
        let path = self.descend(|_, r| r < rank);
        let id = self.node(path.preds[0]).base.next;
        self.unlink(id, &path);
        Some(self.release(id))
    }
}

impl Default for SkipList {
    /// Returns an empty skip list.
    fn default() -> Self {
        SkipList::new()
    }
}

impl fmt::Debug for SkipList {
    /// Formats the elements in order, as a map from member to score.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a SkipList {
    type Item = (&'a Bytes, f64);
    type IntoIter = Iter<'a>;

    /// Returns all elements, ascending.
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// An iterator over a run of consecutive elements of a [`SkipList`], ascending from
/// the front and descending from the back (`.rev()`), with an exact length.
#[derive(Clone)]
pub(crate) struct Iter<'a> {
    /// The list iterated.
    list: &'a SkipList,
    /// Next node from the front (meaningless once `remaining` is 0).
    front: u32,
    /// Next node from the back (meaningless once `remaining` is 0).
    back: u32,
    /// Number of elements not yet yielded from either end.
    remaining: usize,
}

impl<'a> Iter<'a> {
    /// Returns an iterator over no element.
    fn empty(list: &'a SkipList) -> Self {
        Iter {
            list,
            front: NIL,
            back: NIL,
            remaining: 0,
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Bytes, f64);

    /// Returns the next element from the front.
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let node = self.list.node(self.front);
        self.front = node.base.next;
        Some(node.entry())
    }

    /// Returns the exact number of elements left.
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    /// Returns the next element from the back.
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let node = self.list.node(self.back);
        self.back = node.backward;
        Some(node.entry())
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl FusedIterator for Iter<'_> {}

impl fmt::Debug for Iter<'_> {
    /// Formats the number of elements left.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl SkipList {
    /// Panics unless links, spans, backward links, heights, the free list and the
    /// bookkeeping are consistent (everything but element order).
    fn check_structure(&self) {
        let head = self.node(HEAD);
        assert_eq!(head.height(), MAX_LEVEL, "head height");
        assert!(
            (1..=MAX_LEVEL).contains(&self.level),
            "level {}",
            self.level
        );
        for level in self.level..MAX_LEVEL {
            assert_eq!(head.link(level), Link::END, "unused head level {level}");
        }
        let order = self.check_level_zero();
        let mut ranks = vec![u32::MAX; self.nodes.len()];
        ranks[HEAD as usize] = 0;
        for (rank, &id) in (1..).zip(&order) {
            ranks[id as usize] = rank;
        }
        for level in 0..self.level {
            self.check_level(level, &order, &ranks);
        }
        self.check_free_list(&ranks);
        let upper: usize = self.nodes.iter().map(|node| node.upper.len()).sum();
        assert_eq!(self.upper_links, upper, "upper link count");
        if self.len == 0 {
            assert_eq!(self.nodes.len(), 1, "empty list keeps only the head");
        }
    }

    /// Panics unless level 0 and the backward links agree, the length and tail are
    /// right and no node is taller than the list; returns the elements' ids in order.
    fn check_level_zero(&self) -> Vec<u32> {
        let mut order = Vec::new();
        let (mut prev, mut id) = (NIL, self.node(HEAD).base.next);
        while id != NIL {
            assert!(order.len() < self.nodes.len(), "cycle at level 0");
            let node = self.node(id);
            assert_eq!(node.backward, prev, "backward link of {id}");
            assert!(
                node.height() <= self.level,
                "node {id} taller than the list"
            );
            order.push(id);
            (prev, id) = (id, node.base.next);
        }
        assert_eq!(order.len(), self.len(), "len");
        assert_eq!(self.tail, prev, "tail");
        order
    }

    /// Panics unless `level` links exactly the nodes that tall, in order, with spans
    /// equal to rank distances (to `len` for the last link).
    fn check_level(&self, level: usize, order: &[u32], ranks: &[u32]) {
        let (mut id, mut visited) = (HEAD, 0);
        loop {
            let link = self.node(id).link(level);
            let rank = ranks[id as usize];
            if link.next == NIL {
                assert_eq!(link.span, self.len - rank, "end span at level {level}");
                break;
            }
            let next_rank = ranks[link.next as usize];
            assert!(
                next_rank != u32::MAX && next_rank > rank,
                "order at level {level}"
            );
            assert!(
                self.node(link.next).height() > level,
                "short node at {level}"
            );
            assert_eq!(link.span, next_rank - rank, "span at level {level}");
            (id, visited) = (link.next, visited + 1);
        }
        let tall = order.iter().filter(|&&id| self.node(id).height() > level);
        assert_eq!(visited, tall.count(), "nodes at level {level}");
    }

    /// Panics unless the free list chains exactly the slots not in the list, emptied.
    fn check_free_list(&self, ranks: &[u32]) {
        let (mut id, mut free) = (self.free_head, 0);
        while id != NIL {
            assert!(free < self.nodes.len(), "cycle in the free list");
            assert_eq!(ranks[id as usize], u32::MAX, "free slot {id} is linked");
            let node = self.node(id);
            assert!(
                node.member.is_empty() && node.upper.is_empty(),
                "free slot {id} kept data"
            );
            (id, free) = (node.base.next, free + 1);
        }
        assert_eq!(free + self.len() + 1, self.nodes.len(), "arena slots");
    }

    /// Panics unless the structure is consistent and elements strictly ascend.
    pub(crate) fn check_invariants(&self) {
        self.check_structure();
        let order = self.check_level_zero();
        for pair in order.windows(2) {
            let (a, b) = (self.node(pair[0]), self.node(pair[1]));
            assert!(
                a.cmp_key(b.score, &b.member).is_lt(),
                "order: {a:?} !< {b:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Returns `s` as member bytes.
    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Returns the members yielded, as strings.
    fn names<'a>(entries: impl Iterator<Item = (&'a Bytes, f64)>) -> Vec<String> {
        entries
            .map(|(m, _)| String::from_utf8_lossy(m).into_owned())
            .collect()
    }

    /// Returns a list holding the given `(score, member)` elements.
    fn list_of(elements: &[(f64, &str)]) -> SkipList {
        let mut list = SkipList::new();
        for &(score, member) in elements {
            list.insert(score, b(member));
            list.check_invariants();
        }
        list
    }

    /// Returns the sample list a(1) b(2) c(2) d(3) e(5).
    fn sample() -> SkipList {
        list_of(&[(2.0, "c"), (1.0, "a"), (5.0, "e"), (2.0, "b"), (3.0, "d")])
    }

    #[test]
    fn empty_list_answers_nothing() {
        let mut list = SkipList::new();
        list.check_invariants();
        assert!(list.is_empty());
        assert_eq!(list.len(), 0);
        assert_eq!(list.iter().count(), 0);
        assert_eq!(list.first(), None);
        assert_eq!(list.last(), None);
        assert_eq!(list.rank(0.0, b""), None);
        assert_eq!(list.get_by_rank(0), None);
        assert_eq!(list.range_by_rank(0, usize::MAX).count(), 0);
        assert_eq!(list.rev_range_by_rank(0, usize::MAX).count(), 0);
        let (inf, ninf) = (f64::INFINITY, f64::NEG_INFINITY);
        assert_eq!(list.count_in_score_range(ninf, false, inf, false), 0);
        assert_eq!(list.range_by_score(ninf, false, inf, false).count(), 0);
        assert_eq!(list.rev_range_by_score(inf, false, ninf, false).count(), 0);
        assert_eq!(
            list.count_in_lex_range(LexBound::NegInf, LexBound::PosInf),
            0
        );
        assert_eq!(
            list.range_by_lex(LexBound::NegInf, LexBound::PosInf)
                .count(),
            0
        );
        assert!(!list.remove(0.0, b""));
        assert!(!list.update_score(0.0, b"", 1.0));
        assert_eq!(list.pop_first(), None);
        assert_eq!(list.pop_last(), None);
        list.check_invariants();
        assert_eq!(format!("{list:?}"), "{}");
    }

    #[test]
    fn single_element() {
        let mut list = list_of(&[(1.5, "x")]);
        assert_eq!(list.len(), 1);
        assert_eq!(list.first(), Some((&b("x"), 1.5)));
        assert_eq!(list.last(), Some((&b("x"), 1.5)));
        assert_eq!(list.rank(1.5, b"x"), Some(0));
        assert_eq!(list.rank(1.5, b"y"), None);
        assert_eq!(list.rank(1.0, b"x"), None);
        assert_eq!(list.get_by_rank(0), Some((&b("x"), 1.5)));
        assert_eq!(list.get_by_rank(1), None);
        assert_eq!(names(list.range_by_rank(0, 0)), ["x"]);
        assert_eq!(names(list.rev_range_by_rank(0, 5)), ["x"]);
        assert_eq!(list.count_in_score_range(1.5, false, 1.5, false), 1);
        assert_eq!(list.count_in_score_range(1.5, true, 1.5, false), 0);
        assert_eq!(list.pop_last(), Some((b("x"), 1.5)));
        assert!(list.is_empty());
        list.check_invariants();
    }

    #[test]
    fn iterates_in_score_then_member_order() {
        let list = sample();
        assert_eq!(names(list.iter()), ["a", "b", "c", "d", "e"]);
        assert_eq!(names(list.iter().rev()), ["e", "d", "c", "b", "a"]);
        let mut looped = Vec::new();
        for (member, _) in &list {
            looped.push(member.clone());
        }
        assert_eq!(looped, [b("a"), b("b"), b("c"), b("d"), b("e")]);
        assert_eq!(list.iter().len(), 5);
        let scores: Vec<f64> = list.iter().map(|(_, s)| s).collect();
        assert_eq!(scores, [1.0, 2.0, 2.0, 3.0, 5.0]);
        assert_eq!(
            format!("{list:?}"),
            r#"{b"a": 1.0, b"b": 2.0, b"c": 2.0, b"d": 3.0, b"e": 5.0}"#
        );
    }

    #[test]
    fn equal_scores_order_members_bytewise() {
        let members = ["b", "", "ab", "a", "\u{7f}", "a\0", "B", "aa"];
        let mut list = SkipList::new();
        for m in members {
            list.insert(7.0, b(m));
        }
        list.insert(7.0, Bytes::from_static(&[0xff]));
        list.insert(7.0, Bytes::from_static(&[0x00]));
        list.check_invariants();
        let got: Vec<Vec<u8>> = list.iter().map(|(m, _)| m.to_vec()).collect();
        let mut want: Vec<Vec<u8>> = members.iter().map(|m| m.as_bytes().to_vec()).collect();
        want.extend([vec![0xff], vec![0x00]]);
        want.sort();
        assert_eq!(got, want);
        for (i, m) in want.iter().enumerate() {
            assert_eq!(list.rank(7.0, m), Some(i));
        }
    }

    #[test]
    fn negative_zero_equals_zero() {
        let mut list = list_of(&[(0.0, "b"), (-0.0, "a"), (0.0, "c")]);
        assert_eq!(names(list.iter()), ["a", "b", "c"]);
        assert_eq!(list.rank(0.0, b"a"), Some(0));
        assert_eq!(list.rank(-0.0, b"c"), Some(2));
        assert_eq!(list.count_in_score_range(-0.0, false, 0.0, false), 3);
        assert_eq!(list.count_in_score_range(0.0, true, 1.0, false), 0);
        assert_eq!(list.count_in_score_range(-1.0, false, -0.0, true), 0);
        // The stored score keeps its sign.
        assert!(list.first().is_some_and(|(_, s)| s.is_sign_negative()));
        assert!(list.update_score(0.0, b"a", 0.0));
        assert!(list.first().is_some_and(|(_, s)| s.is_sign_positive()));
        assert!(list.remove(-0.0, b"b"));
        assert_eq!(names(list.iter()), ["a", "c"]);
        list.check_invariants();
    }

    #[test]
    fn infinite_scores_and_bounds() {
        let (inf, ninf) = (f64::INFINITY, f64::NEG_INFINITY);
        let list = list_of(&[(inf, "top"), (0.0, "mid"), (ninf, "low"), (f64::MAX, "max")]);
        assert_eq!(names(list.iter()), ["low", "mid", "max", "top"]);
        assert_eq!(list.count_in_score_range(ninf, false, inf, false), 4);
        assert_eq!(list.count_in_score_range(ninf, true, inf, true), 2);
        assert_eq!(names(list.range_by_score(inf, false, inf, false)), ["top"]);
        assert_eq!(
            names(list.range_by_score(ninf, false, ninf, false)),
            ["low"]
        );
        assert_eq!(list.range_by_score(inf, true, inf, false).count(), 0);
        assert_eq!(
            names(list.rev_range_by_score(inf, true, ninf, true)),
            ["max", "mid"]
        );
        assert_eq!(list.rank(inf, b"top"), Some(3));
        assert_eq!(list.rank(ninf, b"low"), Some(0));
    }

    #[test]
    fn rank_lookups() {
        let list = sample();
        for (i, (m, s)) in [("a", 1.0), ("b", 2.0), ("c", 2.0), ("d", 3.0), ("e", 5.0)]
            .into_iter()
            .enumerate()
        {
            assert_eq!(list.rank(s, m.as_bytes()), Some(i));
            assert_eq!(list.get_by_rank(i), Some((&b(m), s)));
        }
        assert_eq!(list.rank(2.0, b"a"), None);
        assert_eq!(list.rank(2.0, b"bb"), None);
        assert_eq!(list.rank(9.0, b"z"), None);
        assert_eq!(list.rank(0.0, b""), None);
        assert_eq!(list.get_by_rank(5), None);
        assert_eq!(list.get_by_rank(usize::MAX), None);
    }

    #[test]
    fn rank_ranges_clamp_and_reject_out_of_range() {
        let list = sample();
        assert_eq!(names(list.range_by_rank(1, 3)), ["b", "c", "d"]);
        assert_eq!(names(list.range_by_rank(3, 100)), ["d", "e"]);
        assert_eq!(
            names(list.range_by_rank(0, usize::MAX)),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(names(list.range_by_rank(4, 4)), ["e"]);
        assert_eq!(list.range_by_rank(5, 9).count(), 0);
        assert_eq!(list.range_by_rank(3, 2).count(), 0);
        assert_eq!(list.range_by_rank(usize::MAX, usize::MAX).count(), 0);
        assert_eq!(list.range_by_rank(1, 3).len(), 3);
        assert_eq!(names(list.rev_range_by_rank(0, 1)), ["e", "d"]);
        assert_eq!(names(list.rev_range_by_rank(3, 100)), ["b", "a"]);
        assert_eq!(names(list.rev_range_by_rank(1, 3)), ["d", "c", "b"]);
        assert_eq!(list.rev_range_by_rank(5, 9).count(), 0);
        assert_eq!(list.rev_range_by_rank(2, 1).count(), 0);
        assert_eq!(list.rev_range_by_rank(usize::MAX, usize::MAX).count(), 0);
    }

    #[test]
    fn score_ranges_with_exclusive_bounds() {
        let list = sample();
        assert_eq!(
            names(list.range_by_score(2.0, false, 3.0, false)),
            ["b", "c", "d"]
        );
        assert_eq!(names(list.range_by_score(2.0, true, 3.0, false)), ["d"]);
        assert_eq!(
            names(list.range_by_score(2.0, false, 3.0, true)),
            ["b", "c"]
        );
        assert_eq!(list.range_by_score(2.0, true, 3.0, true).count(), 0);
        assert_eq!(
            names(list.range_by_score(1.5, false, 4.0, false)),
            ["b", "c", "d"]
        );
        assert_eq!(list.count_in_score_range(1.0, false, 5.0, false), 5);
        assert_eq!(list.count_in_score_range(1.0, true, 5.0, true), 3);
        assert_eq!(list.count_in_score_range(6.0, false, 9.0, false), 0);
        assert_eq!(list.count_in_score_range(-9.0, false, 0.0, false), 0);
        assert_eq!(
            names(list.rev_range_by_score(5.0, true, 2.0, false)),
            ["d", "c", "b"]
        );
        assert_eq!(names(list.rev_range_by_score(3.0, false, 2.0, true)), ["d"]);
    }

    #[test]
    fn inverted_and_degenerate_score_ranges_are_empty() {
        let list = sample();
        assert_eq!(list.count_in_score_range(3.0, false, 2.0, false), 0);
        assert_eq!(list.range_by_score(3.0, false, 2.0, false).count(), 0);
        assert_eq!(list.rev_range_by_score(2.0, false, 3.0, false).count(), 0);
        assert_eq!(list.count_in_score_range(2.0, true, 2.0, false), 0);
        assert_eq!(list.count_in_score_range(2.0, false, 2.0, true), 0);
        assert_eq!(list.count_in_score_range(2.0, false, 2.0, false), 2);
        let (inf, ninf) = (f64::INFINITY, f64::NEG_INFINITY);
        assert_eq!(list.count_in_score_range(inf, false, ninf, false), 0);
    }

    #[test]
    fn lex_ranges_follow_redis() {
        use LexBound::{Exclusive as Ex, Inclusive as In, NegInf, PosInf};
        // The ZRANGEBYLEX example of the Redis documentation.
        let list = list_of(&[
            (0.0, "a"),
            (0.0, "b"),
            (0.0, "c"),
            (0.0, "d"),
            (0.0, "e"),
            (0.0, "f"),
            (0.0, "g"),
        ]);
        assert_eq!(names(list.range_by_lex(NegInf, In(b"c"))), ["a", "b", "c"]);
        assert_eq!(names(list.range_by_lex(NegInf, Ex(b"c"))), ["a", "b"]);
        assert_eq!(
            names(list.range_by_lex(Ex(b"aaa"), In(b"g"))),
            ["b", "c", "d", "e", "f", "g"]
        );
        assert_eq!(
            names(list.range_by_lex(In(b"aaa"), Ex(b"g"))),
            ["b", "c", "d", "e", "f"]
        );
        assert_eq!(names(list.range_by_lex(Ex(b"f"), PosInf)), ["g"]);
        assert_eq!(list.count_in_lex_range(NegInf, PosInf), 7);
        assert_eq!(list.count_in_lex_range(In(b"b"), In(b"f")), 5);
        assert_eq!(list.count_in_lex_range(Ex(b"b"), Ex(b"f")), 3);
        // Empty, inverted and degenerate ranges.
        assert_eq!(list.count_in_lex_range(PosInf, NegInf), 0);
        assert_eq!(list.count_in_lex_range(PosInf, PosInf), 0);
        assert_eq!(list.count_in_lex_range(NegInf, NegInf), 0);
        assert_eq!(list.count_in_lex_range(In(b"e"), In(b"b")), 0);
        assert_eq!(list.count_in_lex_range(In(b"c"), Ex(b"c")), 0);
        assert_eq!(list.count_in_lex_range(Ex(b"c"), In(b"c")), 0);
        assert_eq!(list.count_in_lex_range(In(b"c"), In(b"c")), 1);
        assert_eq!(list.count_in_lex_range(In(b"h"), PosInf), 0);
        assert_eq!(
            names(list.range_by_lex(In(b"c"), In(b"e")).rev()),
            ["e", "d", "c"]
        );
    }

    #[test]
    fn lex_ranges_on_mixed_scores_do_not_misbehave() {
        let list = list_of(&[(1.0, "z"), (2.0, "a"), (3.0, "m"), (4.0, "b")]);
        let all: Vec<String> = names(list.iter());
        for min in [
            LexBound::NegInf,
            LexBound::Inclusive(b"b"),
            LexBound::Exclusive(b"m"),
        ] {
            for max in [
                LexBound::PosInf,
                LexBound::Inclusive(b"m"),
                LexBound::Exclusive(b"z"),
            ] {
                let got = names(list.range_by_lex(min, max));
                assert_eq!(got.len(), list.count_in_lex_range(min, max));
                let contiguous = got.is_empty() || all.windows(got.len()).any(|w| w == got);
                assert!(contiguous, "{got:?} is not a run of {all:?}");
            }
        }
    }

    #[test]
    fn remove_unlinks_only_the_exact_element() {
        let mut list = sample();
        assert!(!list.remove(2.0, b"a"));
        assert!(!list.remove(3.0, b"c"));
        assert!(list.remove(2.0, b"c"));
        assert!(!list.remove(2.0, b"c"));
        list.check_invariants();
        assert_eq!(names(list.iter()), ["a", "b", "d", "e"]);
        assert!(list.remove(5.0, b"e"));
        assert!(list.remove(1.0, b"a"));
        list.check_invariants();
        assert_eq!(names(list.iter()), ["b", "d"]);
        assert_eq!(list.first(), Some((&b("b"), 2.0)));
        assert_eq!(list.last(), Some((&b("d"), 3.0)));
    }

    #[test]
    fn update_score_moves_or_keeps_in_place() {
        let mut list = sample();
        // In place: stays between a(1) and c(2).
        assert!(list.update_score(2.0, b"b", 1.5));
        list.check_invariants();
        assert_eq!(list.rank(1.5, b"b"), Some(1));
        // Moves to the end, then to the front.
        assert!(list.update_score(1.5, b"b", 10.0));
        list.check_invariants();
        assert_eq!(names(list.iter()), ["a", "c", "d", "e", "b"]);
        assert!(list.update_score(10.0, b"b", -1.0));
        list.check_invariants();
        assert_eq!(names(list.iter()), ["b", "a", "c", "d", "e"]);
        // A tie on score is ordered by member.
        assert!(list.update_score(-1.0, b"b", 2.0));
        assert_eq!(names(list.iter()), ["a", "b", "c", "d", "e"]);
        // Absent (wrong old score or member): nothing changes.
        assert!(!list.update_score(3.0, b"b", 4.0));
        assert!(!list.update_score(2.0, b"x", 4.0));
        assert_eq!(list.rank(2.0, b"b"), Some(1));
        list.check_invariants();
    }

    #[test]
    fn update_score_keeps_the_member_bytes() {
        let mut list = sample();
        let before = list.get_by_rank(0).map(|(m, _)| m.as_ptr());
        assert!(list.update_score(1.0, b"a", 9.0));
        assert_eq!(list.get_by_rank(4).map(|(m, _)| m.as_ptr()), before);
        assert_eq!(list.pop_last().map(|(m, _)| m.as_ptr()), before);
    }

    #[test]
    fn pops_take_the_extremes() {
        let mut list = sample();
        assert_eq!(list.pop_first(), Some((b("a"), 1.0)));
        assert_eq!(list.pop_last(), Some((b("e"), 5.0)));
        list.check_invariants();
        assert_eq!(names(list.iter()), ["b", "c", "d"]);
        assert_eq!(list.pop_last(), Some((b("d"), 3.0)));
        assert_eq!(list.pop_first(), Some((b("b"), 2.0)));
        assert_eq!(list.pop_first(), Some((b("c"), 2.0)));
        assert_eq!(list.pop_first(), None);
        assert_eq!(list.pop_last(), None);
        list.check_invariants();
    }

    #[test]
    fn iterators_meet_in_the_middle() {
        let list = sample();
        let mut it = list.range_by_score(1.0, true, 5.0, false);
        assert_eq!(it.len(), 4);
        assert_eq!(it.next(), Some((&b("b"), 2.0)));
        assert_eq!(it.next_back(), Some((&b("e"), 5.0)));
        assert_eq!(it.next_back(), Some((&b("d"), 3.0)));
        assert_eq!(it.len(), 1);
        assert_eq!(it.next(), Some((&b("c"), 2.0)));
        assert_eq!(it.next(), None);
        assert_eq!(it.next_back(), None);
    }

    #[test]
    fn freed_slots_are_reused_and_empty_list_returns_memory() {
        let mut list = SkipList::new();
        let empty_bytes = list.heap_bytes();
        for i in 0..1000_u32 {
            list.insert(f64::from(i), Bytes::from(i.to_string()));
        }
        let slots = list.nodes.len();
        let full_bytes = list.heap_bytes();
        assert!(full_bytes >= empty_bytes + 1000 * mem::size_of::<Node>());
        for i in (0..1000_u32).step_by(2) {
            assert!(list.remove(f64::from(i), i.to_string().as_bytes()));
        }
        for i in 1000..1500_u32 {
            list.insert(f64::from(i), Bytes::from(i.to_string()));
        }
        list.check_invariants();
        assert_eq!(list.nodes.len(), slots, "freed slots reused");
        while list.pop_first().is_some() {}
        list.check_invariants();
        assert_eq!(list.nodes.len(), 1);
        assert!(list.heap_bytes() <= empty_bytes + RETAINED_SLOTS * mem::size_of::<Node>());
    }

    #[test]
    fn clear_empties_and_the_list_stays_usable() {
        let mut list = sample();
        list.clear();
        list.check_invariants();
        assert!(list.is_empty());
        let slots = RETAINED_SLOTS * mem::size_of::<Node>();
        assert!(list.heap_bytes() <= SkipList::new().heap_bytes() + slots);
        list.insert(1.0, b("x"));
        list.check_invariants();
        assert_eq!(names(list.iter()), ["x"]);
        assert_eq!(SkipList::default().len(), 0);
    }

    #[test]
    fn many_elements_keep_ranks() {
        const N: u32 = 20_000;
        let mut list = SkipList::new();
        // A permutation of 0..N by a multiplier coprime with N.
        for i in 0..N {
            let k = (i * 7919) % N;
            list.insert(f64::from(k / 4), Bytes::from(format!("{k:05}")));
        }
        list.check_invariants();
        assert!(list.level > 4, "levels grow: {}", list.level);
        for k in (0..N).step_by(97) {
            let member = format!("{k:05}");
            assert_eq!(
                list.rank(f64::from(k / 4), member.as_bytes()),
                Some(k as usize)
            );
            assert_eq!(
                list.get_by_rank(k as usize).map(|(m, _)| m.to_vec()),
                Some(member.into())
            );
        }
        assert_eq!(list.count_in_score_range(100.0, false, 199.0, false), 400);
        assert_eq!(list.range_by_rank(5000, 5009).count(), 10);
        for k in (0..N).filter(|k| k % 3 != 0) {
            assert!(list.remove(f64::from(k / 4), format!("{k:05}").as_bytes()));
        }
        list.check_invariants();
        assert_eq!(list.len(), 6667);
        assert_eq!(list.rank(3.0, b"00012"), Some(4));
    }

    #[test]
    fn random_levels_follow_one_quarter() {
        let mut list = SkipList::new();
        let mut counts = [0_u32; MAX_LEVEL + 1];
        for _ in 0..100_000 {
            counts[list.random_level()] += 1;
        }
        assert_eq!(counts[0], 0);
        // Expected 75000, 18750, 4687.
        assert!((73_000..77_000).contains(&counts[1]), "{counts:?}");
        assert!((17_500..20_000).contains(&counts[2]), "{counts:?}");
        assert!((4_000..5_400).contains(&counts[3]), "{counts:?}");
    }

    #[test]
    fn nan_scores_do_not_panic() {
        let mut list = list_of(&[(1.0, "b"), (2.0, "a")]);
        list.insert(f64::NAN, b("c"));
        list.insert(0.0, b("d"));
        list.check_structure();
        let _ = list.rank(f64::NAN, b"c");
        let _ = list.count_in_score_range(f64::NAN, false, f64::NAN, true);
        let _ = list.range_by_score(f64::NAN, true, 1.0, false).count();
        let _ = list.update_score(f64::NAN, b"c", 3.0);
        let _ = list.remove(f64::NAN, b"c");
        let _ = list.remove(3.0, b"c");
        list.check_structure();
        while list.pop_last().is_some() {
            list.check_structure();
        }
    }

    // ---- Model-based property test ----

    /// Scores the model test draws from: duplicates, signed zeros and infinities.
    const SCORES: [f64; 9] = [
        f64::NEG_INFINITY,
        -2.0,
        -1.5,
        -0.0,
        0.0,
        0.5,
        1.0,
        2.5,
        f64::INFINITY,
    ];

    /// An element of the model: score and member.
    type Element = (f64, Vec<u8>);

    /// The reference: a vector kept sorted by score (`-0.0 == 0.0`), then member.
    #[derive(Debug, Default)]
    struct Model {
        /// The elements, in order.
        items: Vec<Element>,
    }

    impl Model {
        /// Returns the score of `member`, if present.
        fn score_of(&self, member: &[u8]) -> Option<f64> {
            self.items
                .iter()
                .find(|(_, m)| m == member)
                .map(|&(s, _)| s)
        }

        /// Inserts an element and restores the order.
        fn insert(&mut self, score: f64, member: &[u8]) {
            self.items.push((score, member.to_vec()));
            self.items.sort_by(|a, b| {
                a.0.partial_cmp(&b.0)
                    .expect("no NaN in the model")
                    .then_with(|| a.1.cmp(&b.1))
            });
        }

        /// Removes the element with this score (`==`, so `-0.0 == 0.0`) and member;
        /// returns whether it was present.
        fn remove(&mut self, score: f64, member: &[u8]) -> bool {
            let found = self
                .items
                .iter()
                .position(|(s, m)| *s == score && m == member);
            found.map(|i| self.items.remove(i)).is_some()
        }
    }

    /// Returns the zero of the other sign for a zero, the score itself otherwise.
    fn flip_zero(score: f64) -> f64 {
        if score == 0.0 { -score } else { score }
    }

    /// Returns elements as comparable `(score bits, member)` pairs.
    fn bits<'a>(entries: impl Iterator<Item = (&'a Bytes, f64)>) -> Vec<(u64, Vec<u8>)> {
        entries.map(|(m, s)| (s.to_bits(), m.to_vec())).collect()
    }

    /// Returns model elements as comparable `(score bits, member)` pairs.
    fn model_bits<'a>(items: impl Iterator<Item = &'a Element>) -> Vec<(u64, Vec<u8>)> {
        items.map(|(s, m)| (s.to_bits(), m.clone())).collect()
    }

    /// An owned [`LexBound`] for generated queries.
    #[derive(Debug, Clone)]
    enum Lex {
        /// `-`.
        NegInf,
        /// `+`.
        PosInf,
        /// `[member`.
        Inclusive(Vec<u8>),
        /// `(member`.
        Exclusive(Vec<u8>),
    }

    impl Lex {
        /// Returns the borrowed bound.
        fn bound(&self) -> LexBound<'_> {
            match self {
                Lex::NegInf => LexBound::NegInf,
                Lex::PosInf => LexBound::PosInf,
                Lex::Inclusive(m) => LexBound::Inclusive(m),
                Lex::Exclusive(m) => LexBound::Exclusive(m),
            }
        }

        /// Returns whether `member` is at or above this minimum (model semantics).
        fn admits_above(&self, member: &[u8]) -> bool {
            match self {
                Lex::NegInf => true,
                Lex::PosInf => false,
                Lex::Inclusive(min) => member >= min.as_slice(),
                Lex::Exclusive(min) => member > min.as_slice(),
            }
        }

        /// Returns whether `member` is at or below this maximum (model semantics).
        fn admits_below(&self, member: &[u8]) -> bool {
            match self {
                Lex::NegInf => false,
                Lex::PosInf => true,
                Lex::Inclusive(max) => member <= max.as_slice(),
                Lex::Exclusive(max) => member < max.as_slice(),
            }
        }
    }

    /// A mutation of the model test.
    #[derive(Debug, Clone)]
    enum Op {
        /// Inserts the member with this score, or moves it there if present.
        Insert(usize, Vec<u8>),
        /// Removes the member with this score (`None`: its own score, zero sign flipped).
        Remove(Vec<u8>, Option<usize>),
        /// Updates the member from this old score (`None`: its own) to the new one.
        Update(Vec<u8>, Option<usize>, usize),
        /// Pops the lowest element.
        PopFirst,
        /// Pops the highest element.
        PopLast,
        /// Clears the list.
        Clear,
    }

    /// Query parameters checked after each mutation.
    #[derive(Debug, Clone)]
    struct Query {
        /// Start rank.
        start: usize,
        /// Stop rank (inclusive).
        stop: usize,
        /// Minimum score index and exclusiveness.
        min: (usize, bool),
        /// Maximum score index and exclusiveness.
        max: (usize, bool),
        /// Minimum member.
        lex_min: Lex,
        /// Maximum member.
        lex_max: Lex,
    }

    /// Returns a strategy of score indexes.
    fn score() -> impl Strategy<Value = usize> {
        0..SCORES.len()
    }

    /// Returns a strategy of members over the bytes `00 'a' 'b' ff`: often short (so
    /// members recur, and are prefixes of one another), otherwise up to 6 bytes long.
    fn member() -> impl Strategy<Value = Vec<u8>> {
        let byte = || prop::sample::select(vec![0x00_u8, b'a', b'b', 0xff]);
        prop_oneof![
            3 => prop::collection::vec(byte(), 0..=2),
            2 => prop::collection::vec(byte(), 3..=6),
        ]
    }

    /// Returns a strategy of lex bounds.
    fn lex() -> impl Strategy<Value = Lex> {
        prop_oneof![
            1 => Just(Lex::NegInf),
            1 => Just(Lex::PosInf),
            4 => member().prop_map(Lex::Inclusive),
            4 => member().prop_map(Lex::Exclusive),
        ]
    }

    /// Returns a strategy of ranks, now and then huge.
    fn rank() -> impl Strategy<Value = usize> {
        prop_oneof![10 => 0_usize..48, 1 => Just(usize::MAX)]
    }

    /// Returns a strategy of mutations.
    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            120 => (score(), member()).prop_map(|(s, m)| Op::Insert(s, m)),
            25 => (member(), prop::option::of(score())).prop_map(|(m, s)| Op::Remove(m, s)),
            25 => (member(), prop::option::of(score()), score())
                .prop_map(|(m, old, new)| Op::Update(m, old, new)),
            6 => Just(Op::PopFirst),
            6 => Just(Op::PopLast),
            1 => Just(Op::Clear),
        ]
    }

    /// Returns a strategy of queries.
    fn query() -> impl Strategy<Value = Query> {
        let bounds = ((score(), any::<bool>()), (score(), any::<bool>()));
        (rank(), rank(), bounds, lex(), lex()).prop_map(
            |(start, stop, (min, max), lex_min, lex_max)| Query {
                start,
                stop,
                min,
                max,
                lex_min,
                lex_max,
            },
        )
    }

    /// Applies `op` to both the list and the model (all scores are `SCORES[single]`
    /// when set), checking the results agree.
    fn apply(
        list: &mut SkipList,
        model: &mut Model,
        op: &Op,
        single: Option<usize>,
    ) -> Result<(), TestCaseError> {
        let pick = |s: usize| SCORES[single.unwrap_or(s)];
        let own_or = |m: &[u8], s: &Option<usize>| match (s, model.score_of(m)) {
            (Some(s), _) => pick(*s),
            (None, Some(own)) => flip_zero(own),
            (None, None) => 0.0,
        };
        match op {
            Op::Insert(s, m) => match model.score_of(m) {
                Some(old) => {
                    prop_assert!(list.update_score(old, m, pick(*s)));
                    model.remove(old, m);
                    model.insert(pick(*s), m);
                }
                None => {
                    list.insert(pick(*s), Bytes::from(m.clone()));
                    model.insert(pick(*s), m);
                }
            },
            Op::Remove(m, s) => {
                let score = own_or(m, s);
                prop_assert_eq!(list.remove(score, m), model.remove(score, m));
            }
            Op::Update(m, old, new) => {
                let old = own_or(m, old);
                let present = model.remove(old, m);
                if present {
                    model.insert(pick(*new), m);
                }
                prop_assert_eq!(list.update_score(old, m, pick(*new)), present);
            }
            Op::PopFirst => {
                let want = (!model.items.is_empty()).then(|| model.items.remove(0));
                let got = list.pop_first().map(|(m, s)| (s, m.to_vec()));
                prop_assert_eq!(
                    got.map(|(s, m)| (s.to_bits(), m)),
                    want.map(|(s, m)| (s.to_bits(), m))
                );
            }
            Op::PopLast => {
                let want = model.items.pop();
                let got = list.pop_last().map(|(m, s)| (s, m.to_vec()));
                prop_assert_eq!(
                    got.map(|(s, m)| (s.to_bits(), m)),
                    want.map(|(s, m)| (s.to_bits(), m))
                );
            }
            Op::Clear => {
                list.clear();
                model.items.clear();
            }
        }
        Ok(())
    }

    /// Checks every read of the list against the model, ranges per `q`.
    fn check(list: &SkipList, model: &Model, q: &Query) -> Result<(), TestCaseError> {
        let items = &model.items;
        let len = items.len();
        prop_assert_eq!(list.len(), len);
        prop_assert_eq!(list.is_empty(), len == 0);
        prop_assert_eq!(bits(list.iter()), model_bits(items.iter()));
        prop_assert_eq!(bits(list.iter().rev()), model_bits(items.iter().rev()));
        prop_assert_eq!(
            bits(list.first().into_iter()),
            model_bits(items.first().into_iter())
        );
        prop_assert_eq!(
            bits(list.last().into_iter()),
            model_bits(items.last().into_iter())
        );
        for (i, (s, m)) in items.iter().enumerate() {
            prop_assert_eq!(list.rank(*s, m), Some(i));
            prop_assert_eq!(list.rank(flip_zero(*s), m), Some(i));
            let other = if s.is_finite() { *s + 0.25 } else { 0.25 };
            prop_assert_eq!(list.rank(other, m), None);
            prop_assert_eq!(
                bits(list.get_by_rank(i).into_iter()),
                model_bits([&items[i]].into_iter())
            );
        }
        prop_assert!(list.get_by_rank(len).is_none());
        prop_assert_eq!(list.rank(0.0, b"zz"), None);
        check_rank_ranges(list, items, q)?;
        check_score_ranges(list, items, q)?;
        check_lex_ranges(list, items, q)
    }

    /// Checks `range_by_rank` and `rev_range_by_rank` for the query's ranks.
    fn check_rank_ranges(
        list: &SkipList,
        items: &[Element],
        q: &Query,
    ) -> Result<(), TestCaseError> {
        let window = |len: usize| {
            if q.start >= len || q.start > q.stop {
                0..0
            } else {
                q.start..q.stop.min(len - 1) + 1
            }
        };
        let want = &items[window(items.len())];
        prop_assert_eq!(list.range_by_rank(q.start, q.stop).len(), want.len());
        prop_assert_eq!(
            bits(list.range_by_rank(q.start, q.stop)),
            model_bits(want.iter())
        );
        let reversed: Vec<&Element> = items.iter().rev().collect();
        let want_rev = &reversed[window(items.len())];
        prop_assert_eq!(
            list.rev_range_by_rank(q.start, q.stop).len(),
            want_rev.len()
        );
        prop_assert_eq!(
            bits(list.rev_range_by_rank(q.start, q.stop)),
            model_bits(want_rev.iter().copied())
        );
        Ok(())
    }

    /// Checks the score-range reads for the query's bounds.
    fn check_score_ranges(
        list: &SkipList,
        items: &[Element],
        q: &Query,
    ) -> Result<(), TestCaseError> {
        let ((min, min_excl), (max, max_excl)) =
            ((SCORES[q.min.0], q.min.1), (SCORES[q.max.0], q.max.1));
        let inside = |s: f64| {
            (if min_excl { s > min } else { s >= min })
                && (if max_excl { s < max } else { s <= max })
        };
        let want: Vec<&Element> = items.iter().filter(|(s, _)| inside(*s)).collect();
        prop_assert_eq!(
            list.count_in_score_range(min, min_excl, max, max_excl),
            want.len()
        );
        prop_assert_eq!(
            bits(list.range_by_score(min, min_excl, max, max_excl)),
            model_bits(want.iter().copied())
        );
        prop_assert_eq!(
            bits(list.rev_range_by_score(max, max_excl, min, min_excl)),
            model_bits(want.iter().rev().copied())
        );
        Ok(())
    }

    /// Checks the lex-range reads: against the model when all scores are equal, and
    /// for being a consistent run of the list otherwise.
    fn check_lex_ranges(
        list: &SkipList,
        items: &[Element],
        q: &Query,
    ) -> Result<(), TestCaseError> {
        let (min, max) = (q.lex_min.bound(), q.lex_max.bound());
        let got = bits(list.range_by_lex(min, max));
        prop_assert_eq!(list.count_in_lex_range(min, max), got.len());
        prop_assert_eq!(
            bits(list.range_by_lex(min, max).rev())
                .into_iter()
                .rev()
                .collect::<Vec<_>>(),
            got.clone()
        );
        let same_score = items.windows(2).all(|w| w[0].0 == w[1].0);
        if same_score {
            let want = items
                .iter()
                .filter(|(_, m)| q.lex_min.admits_above(m) && q.lex_max.admits_below(m));
            prop_assert_eq!(got, model_bits(want));
        } else if let Some(first) = got.first() {
            let all = model_bits(items.iter());
            let start = all
                .iter()
                .position(|e| e == first)
                .expect("yielded element exists");
            prop_assert_eq!(&all[start..start + got.len()], got.as_slice());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random operation sequences agree with a sorted-vector model, and the
        /// structure stays consistent after every step.
        #[test]
        fn agrees_with_model(
            single in prop::option::weighted(0.3, score()),
            steps in prop::collection::vec((op(), query()), 0..200),
        ) {
            let mut list = SkipList::new();
            let mut model = Model::default();
            for (op, query) in &steps {
                apply(&mut list, &mut model, op, single)?;
                list.check_invariants();
                check(&list, &model, query)?;
            }
        }
    }
}
