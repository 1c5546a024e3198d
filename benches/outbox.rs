//! The disk outbox when a long broker outage has filled it: crossings of 300 bytes pushed into
//! an outbox bounded at 64 MiB (the default `outbox_max_mb`) until it drops to make room, then
//! pushes into the full outbox (each dropping the oldest counts or crossing) and acknowledgements
//! (the broker back: the oldest read and deleted). Milliseconds per message, against the same
//! pushes into the empty outbox at the start of the same run. JSON in `target/bench-outbox.json`.
//!
//! `cargo bench -p canh --bench outbox [-- MIB]`

use std::time::Instant;

use canh::events::{Message, MessageKind, Payload};
use canh::publish::Outbox;

/// Messages timed in each phase.
const TIMED: u32 = 2000;

fn main() {
    let mib: f64 = std::env::args().skip(1).find(|a| a != "--bench").and_then(|a| a.parse().ok()).unwrap_or(64.0);
    let dir = std::env::temp_dir().join(format!("canh-bench-outbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let mut outbox = Outbox::open(&dir.join("outbox.sqlite"), (mib * 1024.0 * 1024.0) as u64).expect("the outbox");
    let topic = "canh/cam1/crossing";
    let crossing = Message { kind: MessageKind::of(topic, "canh").expect("a crossing topic"), payload: Payload::Json("x".repeat(300)), origin: None };
    let ms_per = |started: Instant| started.elapsed().as_secs_f64() * 1000.0 / TIMED as f64;

    let started = Instant::now();
    for _ in 0..TIMED {
        outbox.push(topic, &crossing).expect("a push");
    }
    let empty_push_ms = ms_per(started);
    let mut rows = TIMED as u64;
    let filling = Instant::now();
    while outbox.push(topic, &crossing).expect("a push").dropped == 0 {
        rows += 1;
    }
    let fill_s = filling.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..TIMED {
        outbox.push(topic, &crossing).expect("a push");
    }
    let full_push_ms = ms_per(started);
    let started = Instant::now();
    let mut after = 0;
    for _ in 0..TIMED {
        let next = outbox.next_after(after).expect("a read").expect("a stored message");
        after = next.id;
        outbox.remove(next.id).expect("a delete");
    }
    let ack_ms = ms_per(started);
    let _ = std::fs::remove_dir_all(&dir);
    let result = serde_json::json!({
        "outbox_mib": mib, "rows_when_full": rows, "fill_s": fill_s,
        "push_ms_empty": empty_push_ms, "push_ms_full": full_push_ms, "ack_ms_full": ack_ms,
    });
    println!("outbox of {mib} MiB: full at {rows} crossings (filled in {fill_s:.1} s); push {empty_push_ms:.3} ms empty, {full_push_ms:.3} ms full (each dropping one); acknowledgement {ack_ms:.3} ms full");
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-outbox.json"), serde_json::to_string_pretty(&result).unwrap()).expect("the JSON");
}
