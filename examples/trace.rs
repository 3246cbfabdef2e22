//! Switch tracing: prints every transfer of control made by the
//! `greenlet_prodcons` example, with a switch hook.
//!
//! Run with `cargo run --example trace`.

use std::cell::RefCell;
use std::rc::Rc;

use greenlet::{set_switch_hook, Greenlet};

#[path = "greenlet_prodcons.rs"]
mod prodcons;

fn name(g: &Greenlet) -> String {
    g.name()
        .map(|n| n.to_string())
        .unwrap_or_else(|| format!("#{}", g.id()))
}

/// Runs the producer/consumer with a hook set; returns the events seen.
pub fn run() -> Vec<String> {
    let events = Rc::new(RefCell::new(Vec::new()));
    let log = events.clone();
    let previous = set_switch_hook(Some(Box::new(move |e| {
        log.borrow_mut().push(format!(
            "{:>8} -> {:<8} {:?}",
            name(&e.origin),
            name(&e.target),
            e.kind
        ));
    })));
    prodcons::run();
    set_switch_hook(previous);
    let lines = events.borrow().clone();
    lines
}

#[allow(dead_code)]
fn main() {
    for line in run() {
        println!("{line}");
    }
}
