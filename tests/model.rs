//! A model-based randomized test of rows 1–12 of `docs/semantics.md`: random programs run on the
//! real crate and on a small reference interpreter (no stack switching), and
//! the full traces must match: who runs, what value or error arrives, which
//! greenlets unwind, in what order.
//!
//! A program is a list of operations. Whichever greenlet is current executes
//! the next one (every greenlet, main included, runs the same interpreter),
//! so a switch hands the rest of the program to its target. Operations name
//! greenlets by index into a table of handles (index 0 is main); an index is
//! taken modulo the table's length.
//!
//! Some programs run with a switch hook set that records every event it
//! sees in the trace and, every so many events, drops a table handle from
//! inside the hook (which may kill a greenlet in the middle of a switch,
//! a kill or a finish); the model predicts those events too.
//!
//! 10,000 cases run in `cargo test`; set `GREENLET_MODEL_CASES` for more.
//! A failure shrinks to a minimal program, printed in the message.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;

use greenlet::{set_switch_hook, Greenlet, SwitchError};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Create a greenlet; its parent is the table entry, or the current
    /// greenlet if that handle was dropped.
    Create {
        parent: usize,
        current_parent: bool,
    },
    Switch {
        target: usize,
        value: u32,
    },
    Throw {
        target: usize,
        payload: u32,
    },
    Kill {
        target: usize,
    },
    /// Drop the table's handle.
    Drop {
        target: usize,
    },
    SetParent {
        target: usize,
        parent: usize,
    },
    /// The current greenlet returns (ignored in main).
    Return {
        value: u32,
    },
    /// The current greenlet panics (ignored in main).
    Panic {
        value: u32,
    },
}

/// A switch hook for a program: it logs every event and, when `drop_every`
/// is not zero, drops table entry `drop_target` (modulo the table's length)
/// on every `drop_every`-th event.
#[derive(Clone, Copy, Debug)]
struct Hook {
    drop_every: u32,
    drop_target: usize,
}

fn hook_strategy() -> impl Strategy<Value = Option<Hook>> {
    proptest::option::weighted(
        0.3,
        (0..4u32, 0..8usize).prop_map(|(drop_every, drop_target)| Hook {
            drop_every,
            drop_target,
        }),
    )
}

/// The value main receives when the program is exhausted in another greenlet.
const END: u32 = u32::MAX;

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..8usize, any::<bool>()).prop_map(|(parent, current_parent)| Op::Create { parent, current_parent }),
        6 => (0..8usize, 0..100u32).prop_map(|(target, value)| Op::Switch { target, value }),
        1 => (0..8usize, 0..100u32).prop_map(|(target, payload)| Op::Throw { target, payload }),
        1 => (0..8usize).prop_map(|target| Op::Kill { target }),
        1 => (0..8usize).prop_map(|target| Op::Drop { target }),
        1 => (0..8usize, 0..8usize).prop_map(|(target, parent)| Op::SetParent { target, parent }),
        2 => (0..100u32).prop_map(|value| Op::Return { value }),
        1 => (0..100u32).prop_map(|value| Op::Panic { value }),
    ]
}

/// What arrived at a pending switch, in a form both sides can print.
enum Arrival {
    Ok(u32),
    Thrown(u32),
    Panicked(u32),
    Killed,
}

impl fmt::Display for Arrival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arrival::Ok(v) => write!(f, "Ok({v})"),
            Arrival::Thrown(v) => write!(f, "Thrown({v})"),
            Arrival::Panicked(v) => write!(f, "Panicked({v})"),
            Arrival::Killed => f.write_str("Killed"),
        }
    }
}

// ---------------------------------------------------------------------------
// The real crate.

struct Real {
    ops: RefCell<VecDeque<Op>>,
    table: RefCell<Vec<Option<Greenlet>>>,
    /// Greenlet index by id (index into `table`).
    ids: RefCell<Vec<u64>>,
    log: RefCell<Vec<String>>,
}

thread_local! {
    static REAL: RefCell<Option<std::rc::Rc<Real>>> = const { RefCell::new(None) };
}

fn real() -> std::rc::Rc<Real> {
    REAL.with(|r| r.borrow().clone().unwrap())
}

impl Real {
    fn index_of_current(&self) -> usize {
        let id = Greenlet::current().id();
        self.ids.borrow().iter().position(|x| *x == id).unwrap()
    }

    fn push(&self, s: String) {
        self.log.borrow_mut().push(s);
    }

    fn handle(&self, i: usize) -> Option<Greenlet> {
        let table = self.table.borrow();
        table[i % table.len()].clone()
    }

    fn resolve(&self, i: usize) -> usize {
        i % self.table.borrow().len()
    }
}

/// Logs "gN exit" when a greenlet's function ends, however it ends.
struct ExitGuard(usize);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // After a failed case, leftovers may be killed later (their handles
        // dropped), when there is no log any more. (A thread's exit leaves
        // started greenlets suspended: this guard does not run then.)
        if let Ok(Some(rt)) = REAL.try_with(|r| r.borrow().clone()) {
            rt.push(format!("g{} exit", self.0));
        }
    }
}

fn arrival(r: Result<u32, SwitchError>) -> Arrival {
    match r {
        Ok(v) => Arrival::Ok(v),
        Err(SwitchError::Thrown(p)) => Arrival::Thrown(*p.downcast_ref::<u32>().unwrap()),
        Err(SwitchError::Panicked(p)) => Arrival::Panicked(*p.downcast_ref::<u32>().unwrap()),
        Err(SwitchError::Killed) => Arrival::Killed,
        Err(e) => panic!("unexpected error in the model test: {e:?}"),
    }
}

fn body(first: u32) -> u32 {
    let rt = real();
    let me = rt.index_of_current();
    let _guard = ExitGuard(me);
    rt.push(format!("g{me} started with {first}"));
    drop(rt);
    run_ops(me).unwrap_or(0)
}

/// A switch or throw from greenlet `me` to table entry `target` (if its
/// handle is there), holding the handle while suspended as real code does;
/// logs what arrives. Returns whether main received the end.
fn send_op(
    me: usize,
    rt: std::rc::Rc<Real>,
    target: usize,
    send: impl FnOnce(&Greenlet) -> Result<u32, SwitchError>,
) -> bool {
    let Some(g) = rt.handle(target) else {
        return false;
    };
    drop(rt);
    let a = arrival(send(&g));
    real().push(format!("g{me} got {a}"));
    drop(g);
    me == 0 && matches!(a, Arrival::Ok(END))
}

/// Runs operations as greenlet `me`; returns `Some(v)` when it executes a
/// `Return` (never for main), `None` when main sees the end.
fn run_ops(me: usize) -> Option<u32> {
    loop {
        let rt = real();
        let op = rt.ops.borrow_mut().pop_front();
        let Some(op) = op else {
            if me == 0 {
                return None;
            }
            // Hand the end to main.
            let main = Greenlet::main();
            drop(rt);
            let r = main.switch::<u32, u32>(END);
            let rt = real();
            rt.push(format!("g{me} got {}", arrival(r)));
            continue;
        };
        match op {
            Op::Create {
                parent,
                current_parent,
            } => {
                let p = if current_parent {
                    None
                } else {
                    rt.handle(parent)
                };
                let mut b = Greenlet::builder();
                if let Some(p) = &p {
                    b = b.parent(p);
                }
                drop(p);
                let g = b.build(body).unwrap();
                rt.ids.borrow_mut().push(g.id());
                rt.table.borrow_mut().push(Some(g));
            }
            Op::Switch { target, value } => {
                if send_op(me, rt, target, |g| g.switch::<u32, u32>(value)) {
                    return None;
                }
            }
            Op::Throw { target, payload } => {
                if send_op(me, rt, target, |g| g.throw::<u32, u32>(payload)) {
                    return None;
                }
            }
            Op::Kill { target } => {
                // Through a clone of the handle: no borrow of the table is
                // held while the hook may drop one of its entries.
                let g = rt.handle(target);
                drop(rt);
                if let Some(g) = g {
                    g.kill();
                }
            }
            Op::Drop { target } => {
                let t = rt.resolve(target);
                let g = rt.table.borrow_mut()[t].take();
                drop(rt);
                drop(g);
            }
            Op::SetParent { target, parent } => {
                let (t, p) = (rt.resolve(target), rt.resolve(parent));
                if let (Some(g), Some(pg)) = (rt.handle(t), rt.handle(p)) {
                    let r = g.set_parent(&pg);
                    rt.push(format!("g{me} set_parent(g{t}, g{p}) = {r:?}"));
                    drop(rt);
                    drop(g);
                    drop(pg);
                }
            }
            Op::Return { value } if me != 0 => return Some(value),
            Op::Panic { value } if me != 0 => std::panic::panic_any(value),
            Op::Return { .. } | Op::Panic { .. } => {}
        }
    }
}

/// Runs the program on a fresh thread (whose exit then unwinds whatever the
/// program left suspended); returns the trace and how many greenlets were
/// still alive once every table handle was dropped.
fn run_real(program: &[Op], hook: Option<Hook>) -> (Vec<String>, usize) {
    let program = program.to_vec();
    std::thread::spawn(move || run_real_here(&program, hook))
        .join()
        .expect("the real run panicked")
}

/// Installs the program's hook (see `Hook`).
fn install_hook(hook: Hook) {
    let mut events = 0u32;
    set_switch_hook(Some(Box::new(move |e| {
        let rt = real();
        let index = |g: &Greenlet| rt.ids.borrow().iter().position(|x| *x == g.id()).unwrap();
        let (o, t) = (index(&e.origin), index(&e.target));
        rt.push(format!("hook {:?} g{o}->g{t}", e.kind));
        events += 1;
        if hook.drop_every != 0 && events.is_multiple_of(hook.drop_every) {
            let i = rt.resolve(hook.drop_target);
            let g = rt.table.borrow_mut()[i].take();
            drop(rt);
            drop(g);
        }
    })));
}

fn run_real_here(program: &[Op], hook: Option<Hook>) -> (Vec<String>, usize) {
    let rt = std::rc::Rc::new(Real {
        ops: RefCell::new(program.iter().copied().collect()),
        table: RefCell::new(vec![Some(Greenlet::main())]),
        ids: RefCell::new(vec![0]),
        log: RefCell::new(Vec::new()),
    });
    REAL.with(|r| *r.borrow_mut() = Some(rt.clone()));
    if let Some(hook) = hook {
        install_hook(hook);
    }
    run_ops(0);
    // Drop the table's handles in order.
    let n = rt.table.borrow().len();
    for i in 0..n {
        let g = rt.table.borrow_mut()[i].take();
        drop(g);
    }
    set_switch_hook(None);
    let log = std::mem::take(&mut *rt.log.borrow_mut());
    REAL.with(|r| *r.borrow_mut() = None);
    // Suspended greenlets that hold handles to each other (a frame holding
    // a handle, a parent link back) leak until the thread exits, as `Rc`
    // cycles do; the model predicts how many.
    (log, greenlet::stats().greenlets.len())
}

// ---------------------------------------------------------------------------
// The model.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    Unstarted,
    Active,
    Dead,
}

/// What travels to a receiver.
#[derive(Clone, Copy)]
enum Sig {
    Value(u32),
    Thrown(u32),
    Panicked(u32),
    Killed,
}

impl Sig {
    fn arrival(self) -> Arrival {
        match self {
            Sig::Value(v) => Arrival::Ok(v),
            Sig::Thrown(v) => Arrival::Thrown(v),
            Sig::Panicked(v) => Arrival::Panicked(v),
            Sig::Killed => Arrival::Killed,
        }
    }
}

#[derive(Clone)]
struct G {
    st: St,
    parent: Option<usize>,
    handle: bool,
    freed: bool,
    /// Dead, and its stack not yet recycled by a receiver.
    pending: bool,
    /// Lost its last reference while running.
    orphan: bool,
    /// The handle (table index) it holds while suspended in a switch/throw.
    holding: Option<usize>,
    /// Kills under way with this greenlet as the killer (each holds a
    /// reference to it until the victim's stack is recycled).
    killing: usize,
    /// Transient references: a kill holds its victim, a hook's event its
    /// origin and target.
    held: usize,
}

struct Model {
    gs: Vec<G>,
    cur: usize,
    log: Vec<String>,
    /// Main received the end of the program.
    ended: bool,
    hook: Option<Hook>,
    events: u32,
    /// A hook call is under way: transfers are not reported.
    in_hook: bool,
    /// Table index -> greenlet, and the table's length.
    handles: Vec<usize>,
}

impl Model {
    fn refs(&self, k: usize) -> usize {
        let mut n = usize::from(self.gs[k].handle)
            + usize::from(k == 0)
            + self.gs[k].killing
            + self.gs[k].held;
        for g in &self.gs {
            if !g.freed && g.parent == Some(k) {
                n += 1;
            }
            if g.holding == Some(k) {
                n += 1;
            }
        }
        n
    }

    fn first_live(&self, mut k: usize) -> usize {
        while self.gs[k].st == St::Dead {
            k = self.gs[k].parent.unwrap();
        }
        k
    }

    /// A reference to `k` went away.
    fn released(&mut self, k: usize) {
        if self.gs[k].freed || self.refs(k) != 0 {
            return;
        }
        if k == self.cur {
            self.gs[k].orphan = true;
            return;
        }
        match self.gs[k].st {
            St::Dead if self.gs[k].pending => {}
            St::Dead => self.free(k),
            St::Unstarted | St::Active => self.kill(k),
        }
    }

    fn free(&mut self, k: usize) {
        self.gs[k].freed = true;
        if let Some(p) = self.gs[k].parent {
            self.released(p);
        }
    }

    fn recycle(&mut self, k: usize) {
        self.gs[k].pending = false;
        if self.refs(k) == 0 {
            self.free(k);
        }
    }

    /// The greenlet `k` (suspended in an operation) is unwound: it drops the
    /// handle it held, then its exit guard runs.
    fn unwind_suspended(&mut self, k: usize) {
        if let Some(t) = self.gs[k].holding.take() {
            self.released(t);
        }
        self.log.push(format!("g{k} exit"));
    }

    /// Kills `v` (not current, not dead, not main) from the current greenlet,
    /// holding it for the whole kill.
    fn kill(&mut self, v: usize) {
        let killer = self.cur;
        self.gs[v].held += 1;
        self.emit(killer, v, "Kill");
        if self.gs[v].st != St::Dead {
            self.gs[killer].killing += 1;
            self.cur = v;
            if self.gs[v].st == St::Active {
                self.unwind_suspended(v);
            }
            // Its death goes back to the killer; the hook sees it before
            // it is marked dead.
            self.emit(v, killer, "Finish");
            self.gs[v].st = St::Dead;
            self.gs[v].pending = true;
            self.gs[v].orphan = false;
            self.cur = killer;
            self.recycle(v);
            self.gs[killer].killing -= 1;
            self.released(killer);
        }
        self.gs[v].held -= 1;
        self.released(v);
    }

    /// A transfer from `origin` to `target`, as the hook sees it: logged,
    /// and every `drop_every`-th one drops a table handle from inside the
    /// hook (whose own transfers are not reported).
    fn emit(&mut self, origin: usize, target: usize, kind: &str) {
        let Some(hook) = self.hook else {
            return;
        };
        if self.in_hook {
            return;
        }
        self.log.push(format!("hook {kind} g{origin}->g{target}"));
        self.events += 1;
        self.in_hook = true;
        // The event holds a handle to each.
        self.gs[origin].held += 1;
        self.gs[target].held += 1;
        if hook.drop_every != 0 && self.events.is_multiple_of(hook.drop_every) {
            let t = self.handles[hook.drop_target % self.handles.len()];
            if self.gs[t].handle {
                self.gs[t].handle = false;
                if t != 0 {
                    self.released(t);
                }
            }
        }
        // The event goes: its origin, then its target.
        self.gs[origin].held -= 1;
        self.released(origin);
        self.gs[target].held -= 1;
        self.released(target);
        self.in_hook = false;
    }

    /// The current greenlet `from` died with `sig`: hand it to the first
    /// live ancestor, as `finish` does.
    fn finish(&mut self, from: usize, sig: Sig) {
        let kind = match sig {
            Sig::Panicked(_) => "Panic",
            _ => "Finish",
        };
        let first = self.first_live(self.gs[from].parent.unwrap());
        self.emit(from, first, kind);
        self.gs[from].st = St::Dead;
        self.gs[from].pending = true;
        self.gs[from].orphan = false;
        // Walk again: the hook may have killed the destination.
        let dest = self.first_live(self.gs[from].parent.unwrap());
        self.arrive(dest, sig, Some(from), None);
    }

    /// `sig` arrives at `dest` (which becomes current). `finished` is a
    /// greenlet whose stack the receiver recycles; `reap` an orphan it kills.
    fn arrive(&mut self, dest: usize, sig: Sig, finished: Option<usize>, reap: Option<usize>) {
        self.cur = dest;
        if let Some(k) = finished {
            self.recycle(k);
        }
        if let Some(k) = reap {
            if !self.gs[k].freed && self.gs[k].st == St::Active {
                self.kill(k);
            }
        }
        match self.gs[dest].st {
            St::Unstarted => match sig {
                Sig::Value(v) => {
                    self.gs[dest].st = St::Active;
                    self.log.push(format!("g{dest} started with {v}"));
                }
                err => {
                    // Dies without running; the error walks on.
                    self.gs[dest].st = St::Active;
                    self.finish(dest, err);
                }
            },
            St::Active => {
                self.log.push(format!("g{dest} got {}", sig.arrival()));
                if dest == 0 && matches!(sig, Sig::Value(END)) {
                    self.ended = true;
                }
                if let Some(t) = self.gs[dest].holding.take() {
                    self.released(t);
                }
            }
            St::Dead => unreachable!("arrival at a dead greenlet"),
        }
    }

    /// The current greenlet sends `sig` towards `target` (a switch or throw).
    fn send(&mut self, target: usize, sig: Sig, throw: bool) {
        let c = self.cur;
        self.gs[c].holding = Some(target);
        let x = loop {
            let x = self.first_live(target);
            if x == c {
                self.gs[c].holding = None;
                self.log.push(format!("g{c} got {}", sig.arrival()));
                self.released(target);
                return;
            }
            self.emit(c, x, if throw { "Throw" } else { "Switch" });
            // The hook may have killed it: route again.
            if self.gs[x].st != St::Dead {
                break x;
            }
        };
        let reap = (c != 0 && self.refs(c) == 0).then_some(c);
        if self.gs[x].st == St::Unstarted && throw {
            // The throw starts it with the error: it dies without running.
            self.cur = x;
            if let Some(k) = reap {
                self.kill(k);
            }
            self.cur = x;
            self.gs[x].st = St::Active;
            self.finish(x, sig);
            return;
        }
        self.arrive(x, sig, None, reap);
    }

    fn step(&mut self, op: Op) {
        let c = self.cur;
        let n = self.handles.len();
        match op {
            Op::Create {
                parent,
                current_parent,
            } => {
                let p = parent % n;
                let parent = if !current_parent && self.gs[self.handles[p]].handle {
                    self.handles[p]
                } else {
                    c
                };
                self.gs.push(G {
                    st: St::Unstarted,
                    parent: Some(parent),
                    handle: true,
                    freed: false,
                    pending: false,
                    orphan: false,
                    holding: None,
                    killing: 0,
                    held: 0,
                });
                self.handles.push(self.gs.len() - 1);
            }
            Op::Switch { target, value } => {
                let t = self.handles[target % n];
                if self.gs[t].handle {
                    if t == c {
                        self.log.push(format!("g{c} got Ok({value})"));
                    } else {
                        self.send(t, Sig::Value(value), false);
                    }
                }
            }
            Op::Throw { target, payload } => {
                let t = self.handles[target % n];
                if self.gs[t].handle {
                    if t == c {
                        self.log.push(format!("g{c} got Thrown({payload})"));
                    } else {
                        self.send(t, Sig::Thrown(payload), true);
                    }
                }
            }
            Op::Kill { target } => {
                let t = self.handles[target % n];
                if self.gs[t].handle && t != 0 && self.gs[t].st != St::Dead {
                    if t == c {
                        // Self-kill: unwinds, the parent gets Killed.
                        self.log.push(format!("g{c} exit"));
                        self.finish(c, Sig::Killed);
                    } else {
                        // The real program kills through a clone.
                        self.gs[t].held += 1;
                        self.kill(t);
                        self.gs[t].held -= 1;
                        self.released(t);
                    }
                }
            }
            Op::Drop { target } => {
                let t = self.handles[target % n];
                if self.gs[t].handle && t != 0 {
                    self.gs[t].handle = false;
                    self.released(t);
                } else if t == 0 && self.gs[0].handle {
                    self.gs[0].handle = false;
                }
            }
            Op::SetParent { target, parent } => {
                let (ti, pi) = (target % n, parent % n);
                let (t, p) = (self.handles[ti], self.handles[pi]);
                if self.gs[t].handle && self.gs[p].handle {
                    // The real program holds a clone of each meanwhile.
                    self.gs[t].held += 1;
                    self.gs[p].held += 1;
                    let r = if t == 0 {
                        "Err(Main)".to_string()
                    } else {
                        let mut w = Some(p);
                        let mut cycle = false;
                        while let Some(k) = w {
                            if k == t {
                                cycle = true;
                                break;
                            }
                            w = self.gs[k].parent;
                        }
                        if cycle {
                            "Err(Cycle)".to_string()
                        } else {
                            let old = self.gs[t].parent.replace(p);
                            if let Some(old) = old {
                                self.released(old);
                            }
                            "Ok(())".to_string()
                        }
                    };
                    self.log
                        .push(format!("g{c} set_parent(g{ti}, g{pi}) = {r}"));
                    self.gs[t].held -= 1;
                    self.released(t);
                    self.gs[p].held -= 1;
                    self.released(p);
                }
            }
            Op::Return { value } if c != 0 => {
                self.log.push(format!("g{c} exit"));
                self.finish(c, Sig::Value(value));
            }
            Op::Panic { value } if c != 0 => {
                self.log.push(format!("g{c} exit"));
                self.finish(c, Sig::Panicked(value));
            }
            Op::Return { .. } | Op::Panic { .. } => {}
        }
    }
}

fn run_model(program: &[Op], hook: Option<Hook>) -> (Vec<String>, usize) {
    let mut m = Model {
        gs: vec![G {
            st: St::Active,
            parent: None,
            handle: true,
            freed: false,
            pending: false,
            orphan: false,
            holding: None,
            killing: 0,
            held: 0,
        }],
        cur: 0,
        log: Vec::new(),
        ended: false,
        hook,
        events: 0,
        in_hook: false,
        // Table index -> greenlet (they coincide: greenlet k is table entry k).
        handles: vec![0usize],
    };
    let mut ops: VecDeque<Op> = program.iter().copied().collect();
    loop {
        let Some(op) = ops.pop_front() else {
            if m.cur == 0 {
                break;
            }
            // The current greenlet hands the end to main.
            m.send(0, Sig::Value(END), false);
            if m.ended {
                break;
            }
            continue;
        };
        m.step(op);
        if m.ended {
            break;
        }
    }
    // Main drops every handle, in order.
    for i in 0..m.handles.len() {
        let k = m.handles[i];
        if m.gs[k].handle && k != 0 {
            m.gs[k].handle = false;
            m.released(k);
        }
    }
    let left = m.gs.iter().filter(|g| !g.freed).count();
    (m.log, left)
}

/// The programs' own panics (u32 payloads) print nothing.
fn quiet_panics() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<u32>() {
                default(info);
            }
        }));
    });
}

fn cases() -> u32 {
    std::env::var("GREENLET_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn the_crate_behaves_like_the_model(
        program in proptest::collection::vec(op_strategy(), 0..40),
        hook in hook_strategy(),
    ) {
        quiet_panics();
        let real = run_real(&program, hook);
        let model = run_model(&program, hook);
        prop_assert_eq!(real, model, "program: {:?}, hook: {:?}", program, hook);
    }
}
