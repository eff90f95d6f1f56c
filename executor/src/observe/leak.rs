//! The live-task watermark (`Builder::task_count_warning`): Go users find goroutine
//! leaks by watching the goroutine count; uringo warns when the count of live tasks
//! passes a watermark, naming the spawn locations that hold the most tasks, and warns
//! again only when the count reaches twice the last watermark.

use crate::loom::sync::Ordering::Relaxed;
use crate::scheduler::Shared;

/// How many spawn locations the warning names.
const TOP: usize = 5;

/// Called by a spawn once the live count is at or past the watermark (the caller's
/// check is one load while no watermark is set, and a sum of the live counters while
/// one is; this does the rest, rarely).
#[cold]
pub(crate) fn passed_watermark(shared: &Shared) {
    let at = shared.next_task_warning.load(Relaxed);
    let live = shared.owned.len();
    if live < at {
        return;
    }
    // One spawner wins the right to warn; the next warning waits for twice as many.
    let next = at.saturating_mul(2);
    if shared
        .next_task_warning
        .compare_exchange(at, next, Relaxed, Relaxed)
        .is_err()
    {
        return;
    }
    let top = shared
        .owned
        .count_by_location(TOP)
        .into_iter()
        .map(|(location, n)| format!("{n} at {location}"))
        .collect::<Vec<_>>()
        .join(", ");
    tracing::warn!(
        live,
        watermark = at,
        next_warning_at = next,
        top_spawn_locations = %top,
        "live tasks passed the warning watermark (a task leak?)"
    );
}
