//! A hierarchical timing wheel: the timer store each uringo worker owns.
//!
//! Every worker thread keeps one [`TimerWheel`]. On each scheduler tick it
//! calls [`TimerWheel::advance`] (or [`TimerWheel::poll`]) to collect the
//! timers that are due, and before parking on its io_uring it asks
//! [`TimerWheel::next_expiration`] how long it may sleep. This crate is only
//! the data structure: no clock, no threads, no atomics, no wakers. The
//! payload `T` is whatever the executor wants back when a timer fires.
//! Because the wheel is touched on every tick, the paths taken on every
//! tick — insert, cancel, `next_expiration`, and an `advance` with nothing
//! due — are O(1) and allocation-free once the wheel has grown to its
//! working size.
//!
//! # Ticks, resolution and range
//!
//! Time is a `u64` count of ticks whose length the caller chooses. The
//! wheel has [`LEVELS`] = 6 levels of [`SLOTS_PER_LEVEL`] = 64 slots. A
//! slot of level `L` spans 64^L ticks and a whole level spans 64^(L+1), so
//! the wheel covers 64^6 = 2^36 ticks ([`WHEEL_RANGE`]), 199 days of
//! uringo's 250 µs ticks: every deadline a program plausibly sets is placed
//! directly, and anything further is still handled exactly (see far-future
//! deadlines below).
//!
//! For comparison, tokio's time driver uses the same shape: 6 levels of 64
//! slots at 1 ms. Go keeps timers per P in a 4-ary min-heap ordered by
//! deadline, at nanosecond resolution; insert and delete there are
//! O(log n). A wheel makes both O(1), which matters for uringo because
//! most of its timers are timeouts guarding I/O that are cancelled long
//! before they fire: a timer storm of 100 000 sleeps armed and cancelled
//! should cost 100 000 constant-time link operations.
//!
//! The tick length is the executor's choice; uringo uses 250 µs ticks
//! (2^36 ticks are then 199 days). A timer fires at the first tick at or
//! after its deadline, so the tick is the lateness every timer carries by
//! design; at 1 ms it alone put the 99th percentile over a millisecond. What
//! makes finer ticks cost nothing for sparse timers is
//! [`TimerWheel::next_wake`]: the worker sleeps until the exact earliest
//! deadline rather than until a higher level's cascade point, so a lone
//! 10 ms ticker wakes once per period whatever the tick length.
//!
//! # Where an entry lives
//!
//! The wheel has processed time up to `elapsed` ([`TimerWheel::elapsed`]).
//! An entry whose deadline is at or before `elapsed` is on the *due list*,
//! waiting to be handed out. Every other entry is in exactly one slot,
//! chosen by comparing its `deadline` with `elapsed`:
//!
//! - Its **level** is the group of 6 bits holding the highest bit in which
//!   `deadline` and `elapsed` differ: `level = (63 - (deadline ^
//!   elapsed).leading_zeros()) / 6`. Deadlines within the current 64-tick
//!   block go to level 0, those within the current 4096-tick block to
//!   level 1, and so on.
//! - Its **slot** is that group of bits of the deadline:
//!   `(deadline >> 6 * level) & 63`.
//!
//! Two facts follow, and the rest of the design leans on them. Above the
//! chosen group the two ticks agree, so the deadline lies inside the block
//! of that level that `elapsed` is in. And since `deadline > elapsed` and
//! the highest difference is in the chosen group, the deadline's slot index
//! there is *strictly greater* than `elapsed`'s. So every occupied slot is
//! ahead of the current slot of its level: a level never wraps around, a
//! slot never mixes entries from two rotations, and a slot's first tick is
//! `elapsed` with its low `6 * (level + 1)` bits cleared, plus
//! `slot * 64^level`.
//!
//! # Finding the next slot: occupancy bitmaps
//!
//! Each level keeps a `u64` with bit `s` set while slot `s` is non-empty.
//! The next occupied slot of a level is the lowest set bit above the
//! current slot: one mask and one `trailing_zeros`. Levels are probed from
//! 0 upwards, and the first level with a slot ahead holds the earliest
//! slot overall, because a level-`L` slot ahead of the current one starts
//! after the whole current level-`L` slot, which contains every occupied
//! slot of the lower levels. So [`TimerWheel::next_expiration`] is at most
//! six mask-and-count probes.
//!
//! For an entry in a level-0 slot the slot's first tick *is* its deadline.
//! For a higher level it is only the tick where the slot must be looked
//! at again, which is why `next_expiration` may be earlier than any actual
//! deadline, but never later.
//!
//! # Cascading
//!
//! Time moves by jumping `elapsed` to the first tick of the earliest
//! occupied slot, emptying that slot, and placing each of its entries again
//! relative to the new `elapsed`: an entry whose deadline has come goes to
//! the due list, the others land in a lower level, since their deadline now
//! agrees with `elapsed` on the group they were filed under. An in-range
//! entry so moves down at most five times in its life, and slots that are empty are
//! never visited: a jump of a year costs the occupied slots it passes and
//! the entries it moves, not the ticks in between. When no slot starts at
//! or before the target tick, `elapsed` jumps straight to it, which keeps
//! the invariants: the remaining slots still start after it.
//!
//! Entries fire when `elapsed` reaches a slot starting at their deadline,
//! which makes the firing order the deadline order (entries with the same
//! deadline, any order). An entry that was already due when inserted or
//! reset goes to the back of the due list, as if its deadline were the
//! `elapsed` of that moment; it is never lost and never waits for a
//! particular `now`.
//!
//! # Far-future deadlines
//!
//! A deadline that differs from `elapsed` above bit 35 lies in a later
//! 2^36-tick rotation of the top level, outside what the slots can name.
//! Such entries are clamped to the top level's last slot to come round: its
//! slot 0 *of the next rotation*. That slot is otherwise never used, since
//! an in-range top-level deadline always has a slot index greater than the
//! current one, which is at least 0. When the rotation ends, the parked
//! entries are placed again like any cascaded slot, keeping their exact
//! deadline, so they are never lost and never fire early. At that point the
//! parked slot is the only occupied one, so `elapsed` can jump straight to
//! the earliest parked deadline (or the target tick, if sooner); even a
//! jump across many rotations costs one pass over the parked entries.
//!
//! # Why a slab and intrusive lists
//!
//! All entries live in one [`slab::Slab`]. Each slot (and the due list) is a
//! doubly-linked list threaded through the slab entries by `u32` index,
//! with `u32::MAX` as "none". Inserting is a slab insert plus a link;
//! cancelling is an unlink plus a slab remove; cascading relinks entries
//! without moving them. The alternatives cost more: a `Vec` per slot
//! allocates as slots fill and needs a search or tombstones to cancel, and
//! boxed nodes allocate per timer. The slab reuses freed entries, so a
//! worker arming and cancelling timeouts at a steady rate stops allocating.
//! Index links keep all of this in safe code (the crate has no `unsafe`),
//! and `u32` links keep the per-entry overhead small.
//!
//! A freed slab index is soon reused, so a [`TimerKey`] carries a
//! generation number, unique for the life of the wheel, beside the index.
//! An operation on a key whose generation no longer matches (the timer
//! fired, was cancelled or was drained) does nothing, and can never touch
//! the timer that now occupies the index.
//!
//! # Example: an executor's tick
//!
//! ```
//! use uringo_timers::TimerWheel;
//!
//! let mut wheel = TimerWheel::new();
//! let timeout = wheel.insert(250, "read timeout");
//! wheel.insert(40, "sleep");
//!
//! let mut fired = Vec::new();
//! let mut now = 0;
//! // Park until the next expiration, then collect what is due.
//! while let Some(wake_at) = wheel.next_expiration() {
//!     now = wake_at;
//!     wheel.advance(now, &mut fired);
//!     if now >= 100 {
//!         // The read completed: its timeout is cancelled before firing.
//!         assert_eq!(wheel.cancel(timeout), Some("read timeout"));
//!     }
//! }
//! assert_eq!(fired.len(), 1);
//! assert_eq!(fired[0].1, "sleep");
//! assert_eq!(now, 192); // where the 250 slot (192..256) cascaded
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod entry;
mod level;
mod list;
mod wheel;

pub use entry::TimerKey;
pub use wheel::TimerWheel;

/// Bits of a deadline consumed by each level: each level has
/// 2^`SLOT_BITS` slots.
///
/// ```
/// assert_eq!(1 << uringo_timers::SLOT_BITS, uringo_timers::SLOTS_PER_LEVEL);
/// ```
pub const SLOT_BITS: u32 = 6;

/// Slots in each level; a `u64` occupancy bitmap covers exactly one level.
///
/// ```
/// assert_eq!(uringo_timers::SLOTS_PER_LEVEL, 64);
/// ```
pub const SLOTS_PER_LEVEL: usize = 1 << SLOT_BITS;

/// Levels in the wheel.
///
/// ```
/// assert_eq!(uringo_timers::LEVELS, 6);
/// ```
pub const LEVELS: usize = 6;

/// Ticks covered by one rotation of the top level: 64^6 = 2^36, 199 days of
/// 250 µs ticks. Deadlines further away than this are parked and re-placed,
/// not lost.
///
/// ```
/// let years = uringo_timers::WHEEL_RANGE as f64 / 1000.0 / 86_400.0 / 365.25;
/// assert!((2.1..2.3).contains(&years));
/// ```
pub const WHEEL_RANGE: u64 = 1 << (SLOT_BITS * LEVELS as u32);

/// How many timers [`TimerWheel::next_wake`] walks to find the exact earliest
/// deadline in a slot above level 0; a fuller slot is answered with its
/// cascade point. Small, so the call stays O(1).
pub const EXACT_SCAN: usize = 8;
