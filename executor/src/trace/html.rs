//! The self-contained HTML timeline: `timeline.html` with the events inlined as JSON.

use std::collections::HashMap;
use std::fmt::Write;

use super::{json_escape, Lane};

const TEMPLATE: &str = include_str!("timeline.html");

/// Renders the page. The data is `{"lanes":[{"name","dropped","ev":[[ts, kind, task,
/// arg, location index]]}], "locs":[...]}`; the script pairs polls and draws.
pub(crate) fn render(lanes: &[Lane]) -> String {
    let mut locs: Vec<String> = Vec::new();
    let mut loc_index: HashMap<*const std::panic::Location<'static>, usize> = HashMap::new();
    let mut data = String::from("{\"lanes\":[");
    for (i, lane) in lanes.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        data.push_str("{\"name\":\"");
        json_escape(&lane.name, &mut data);
        let _ = write!(data, "\",\"dropped\":{},\"ev\":[", lane.dropped);
        for (j, ev) in lane.events.iter().enumerate() {
            if j > 0 {
                data.push(',');
            }
            let loc = match ev.location {
                Some(l) => *loc_index.entry(l as *const _).or_insert_with(|| {
                    locs.push(l.to_string());
                    locs.len() - 1
                }) as i64,
                None => -1,
            };
            let _ = write!(
                data,
                "[{},{},{},{},{}]",
                ev.ts, ev.kind as u8, ev.task, ev.arg, loc
            );
        }
        data.push_str("]}");
    }
    data.push_str("],\"locs\":[");
    for (i, loc) in locs.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        data.push('"');
        json_escape(loc, &mut data);
        data.push('"');
    }
    data.push_str("]}");
    TEMPLATE.replacen("/*DATA*/", &data, 1)
}
