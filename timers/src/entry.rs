//! Timer entries as stored in the slab, and the key handed out for them.

use core::num::NonZeroU64;

/// The "no neighbour" value of an intrusive link.
///
/// Slab indices are capped below it (see [`crate::TimerWheel::insert`]), so
/// it can never name a real entry.
pub(crate) const NONE: u32 = u32::MAX;

/// Which intrusive list an entry is threaded on.
///
/// Cancelling and resetting must unlink an entry from its list head (and
/// clear the slot's occupancy bit when the list empties), so the entry
/// records where it lives instead of the wheel searching for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    /// On the due list: its deadline is at or before `elapsed`.
    Due,
    /// In slot `slot` of level `level`.
    Slot { level: u8, slot: u8 },
}

/// One armed timer.
#[derive(Clone, Debug)]
pub(crate) struct Entry<T> {
    pub(crate) value: T,
    /// The deadline exactly as the caller gave it; placement clamps a copy
    /// of it, never this field, so far-future timers keep their true tick.
    pub(crate) deadline: u64,
    /// Distinguishes this entry from any earlier or later occupant of the
    /// same slab index; a [`TimerKey`] must match it to touch the entry.
    pub(crate) generation: NonZeroU64,
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) location: Location,
}

/// Identifies one timer in the [`TimerWheel`](crate::TimerWheel) that
/// created it.
///
/// A key is a slab index plus a generation number that the wheel never
/// reuses. Once its timer has fired, been cancelled or been drained, the key
/// is stale: every operation on it is a harmless no-op, even after the slab
/// index has been given to a new timer. A key is only meaningful to the
/// wheel that issued it.
///
/// `Option<TimerKey>` is the same size as `TimerKey`.
///
/// ```
/// use uringo_timers::TimerWheel;
///
/// let mut wheel = TimerWheel::new();
/// let first = wheel.insert(10, "first");
/// assert_eq!(wheel.cancel(first), Some("first"));
///
/// // The slab index is reused, but the old key does not reach the new timer.
/// let second = wheel.insert(10, "second");
/// assert_ne!(first, second);
/// assert_eq!(wheel.cancel(first), None);
/// assert_eq!(wheel.deadline(second), Some(10));
/// assert_eq!(
///     core::mem::size_of::<Option<uringo_timers::TimerKey>>(),
///     core::mem::size_of::<uringo_timers::TimerKey>(),
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerKey {
    pub(crate) generation: NonZeroU64,
    pub(crate) index: u32,
}
