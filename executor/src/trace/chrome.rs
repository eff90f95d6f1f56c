//! Chrome Trace Event JSON (<https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU>),
//! as Perfetto and `chrome://tracing` read it.

use std::collections::HashMap;
use std::fmt::Write;

use super::{json_escape, Event, Kind, Lane, TO_INJECTOR};

/// Renders the lanes; `tid` is the lane index.
pub(crate) fn render(lanes: &[Lane]) -> String {
    let mut out = String::with_capacity(1 << 16);
    out.push_str("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
    let mut first = true;
    let mut emit = |out: &mut String, body: std::fmt::Arguments<'_>| {
        if !first {
            out.push_str(",\n");
        }
        first = false;
        let _ = out.write_fmt(body);
    };
    for (tid, lane) in lanes.iter().enumerate() {
        let mut name = String::new();
        json_escape(&lane.name, &mut name);
        emit(
            &mut out,
            format_args!(
                r#"{{"ph":"M","pid":1,"tid":{tid},"name":"thread_name","args":{{"name":"{name}"}}}}"#
            ),
        );
    }
    let next_polls = poll_starts(lanes);
    let mut flow_id = 0u64;
    for (tid, lane) in lanes.iter().enumerate() {
        let mut open_poll: Option<&Event> = None;
        let mut parked_at: Option<u64> = None;
        for ev in &lane.events {
            let ts = us(ev.ts);
            let task = ev.task;
            match ev.kind {
                Kind::PollStart => open_poll = Some(ev),
                Kind::PollEnd => {
                    let Some(start) = open_poll.take().filter(|s| s.task == task) else {
                        continue;
                    };
                    let mut at = String::new();
                    if let Some(l) = start.location {
                        json_escape(&l.to_string(), &mut at);
                    }
                    let (ts, dur) = (us(start.ts), us(ev.ts - start.ts));
                    emit(
                        &mut out,
                        format_args!(
                            r#"{{"ph":"X","cat":"poll","name":"task {task}","pid":1,"tid":{tid},"ts":{ts},"dur":{dur},"args":{{"task":{task},"spawned_at":"{at}"}}}}"#
                        ),
                    );
                }
                Kind::Park => parked_at = Some(ev.ts),
                Kind::Unpark => {
                    if let Some(start) = parked_at.take() {
                        let (ts, dur) = (us(start), us(ev.ts - start));
                        emit(
                            &mut out,
                            format_args!(
                                r#"{{"ph":"X","cat":"park","name":"parked","pid":1,"tid":{tid},"ts":{ts},"dur":{dur}}}"#
                            ),
                        );
                    }
                }
                Kind::Spawn => {
                    let mut at = String::new();
                    if let Some(l) = ev.location {
                        json_escape(&l.to_string(), &mut at);
                    }
                    emit(
                        &mut out,
                        format_args!(
                            r#"{{"ph":"i","s":"t","cat":"task","name":"spawn","pid":1,"tid":{tid},"ts":{ts},"args":{{"task":{task},"spawned_at":"{at}"}}}}"#
                        ),
                    );
                }
                Kind::Wake | Kind::Yield => {
                    let name = ev.kind.name();
                    let to = if ev.kind == Kind::Wake && ev.arg != TO_INJECTOR {
                        ev.arg.to_string()
                    } else if ev.kind == Kind::Wake {
                        "\"injector\"".to_string()
                    } else {
                        tid.to_string()
                    };
                    emit(
                        &mut out,
                        format_args!(
                            r#"{{"ph":"i","s":"t","cat":"wake","name":"{name}","pid":1,"tid":{tid},"ts":{ts},"args":{{"task":{task},"queued_on":{to}}}}}"#
                        ),
                    );
                    flow(
                        &mut out,
                        &mut emit,
                        &next_polls,
                        &mut flow_id,
                        name,
                        tid,
                        ev,
                    );
                }
                Kind::Steal => {
                    let (victim, count) = (ev.arg & 0xffff_ffff, ev.arg >> 32);
                    emit(
                        &mut out,
                        format_args!(
                            r#"{{"ph":"i","s":"t","cat":"steal","name":"steal","pid":1,"tid":{tid},"ts":{ts},"args":{{"victim":{victim},"count":{count},"task":{task}}}}}"#
                        ),
                    );
                    flow(
                        &mut out,
                        &mut emit,
                        &next_polls,
                        &mut flow_id,
                        "steal",
                        victim as usize,
                        ev,
                    );
                }
                Kind::Reap | Kind::TimerFire => {
                    let name = ev.kind.name();
                    let n = ev.arg;
                    emit(
                        &mut out,
                        format_args!(
                            r#"{{"ph":"i","s":"t","cat":"io","name":"{name}","pid":1,"tid":{tid},"ts":{ts},"args":{{"count":{n}}}}}"#
                        ),
                    );
                }
                Kind::Retake => {
                    let worker = ev.arg;
                    emit(
                        &mut out,
                        format_args!(
                            r#"{{"ph":"i","s":"p","cat":"monitor","name":"retake","pid":1,"tid":{tid},"ts":{ts},"args":{{"worker":{worker},"task":{task}}}}}"#
                        ),
                    );
                }
                Kind::Terminate => emit(
                    &mut out,
                    format_args!(
                        r#"{{"ph":"i","s":"t","cat":"task","name":"terminate","pid":1,"tid":{tid},"ts":{ts},"args":{{"task":{task}}}}}"#
                    ),
                ),
            }
        }
    }
    let dropped: u64 = lanes.iter().map(|l| l.dropped).sum();
    let _ = write!(
        out,
        "\n],\"otherData\":{{\"recorder\":\"uringo\",\"dropped\":{dropped}}}}}\n"
    );
    out
}

/// Every poll start, per task, in time order: where a woken or stolen task ran next.
fn poll_starts(lanes: &[Lane]) -> HashMap<u64, Vec<(u64, usize)>> {
    let mut map: HashMap<u64, Vec<(u64, usize)>> = HashMap::new();
    for (tid, lane) in lanes.iter().enumerate() {
        for ev in lane.events.iter().filter(|e| e.kind == Kind::PollStart) {
            map.entry(ev.task).or_default().push((ev.ts, tid));
        }
    }
    for starts in map.values_mut() {
        starts.sort_unstable();
    }
    map
}

/// A flow arrow from `(from_tid, ev.ts)` to the task's next poll start.
fn flow(
    out: &mut String,
    emit: &mut impl FnMut(&mut String, std::fmt::Arguments<'_>),
    next_polls: &HashMap<u64, Vec<(u64, usize)>>,
    flow_id: &mut u64,
    name: &str,
    from_tid: usize,
    ev: &Event,
) {
    let Some(starts) = next_polls.get(&ev.task) else {
        return;
    };
    let i = starts.partition_point(|&(ts, _)| ts < ev.ts);
    let Some(&(to_ts, to_tid)) = starts.get(i) else {
        return;
    };
    *flow_id += 1;
    let id = *flow_id;
    let (ts, to_ts) = (us(ev.ts), us(to_ts));
    emit(
        out,
        format_args!(
            r#"{{"ph":"s","cat":"{name}","name":"{name}","id":{id},"pid":1,"tid":{from_tid},"ts":{ts}}}"#
        ),
    );
    emit(
        out,
        format_args!(
            r#"{{"ph":"f","bp":"e","cat":"{name}","name":"{name}","id":{id},"pid":1,"tid":{to_tid},"ts":{to_ts}}}"#
        ),
    );
}

/// Microseconds, as Chrome wants them, keeping nanosecond precision.
fn us(ns: u64) -> Us {
    Us(ns)
}

struct Us(u64);

impl std::fmt::Display for Us {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}
