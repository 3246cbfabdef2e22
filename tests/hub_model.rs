//! A model-based randomized test of the hub: random programs of `spawn`,
//! `yield_now`, `sleep`, queue puts and gets (unbounded and bounded, with
//! and without timeouts), `Event` set / clear / wait, `join`, `kill`,
//! `throw`, `idle` and `with_timeout`, run on the real hub under the paused clock and on a
//! small reference model of the round-based scheduler (no stacks). The full
//! traces (who completes which call, with what result, at what hub time,
//! in order) and the queues' final contents must match.
//!
//! Each program is a list of greenlets, each a list of steps; main spawns
//! the first few in order and calls `run`, and the others are spawned by a
//! step of a running greenlet. A step is one call, optionally inside
//! `with_timeout`. Greenlets name each other by index; a step aimed at a
//! greenlet that is not there to take it (not spawned, dead, or the caller
//! itself) does nothing, on both sides.
//!
//! A throw is the raw [`Greenlet::throw`]: a switch, so the thrower stays
//! suspended in it until something switches to it (here: another throw,
//! whose error its own throw then returns, or a kill), while its target
//! unwinds out of whatever call it is blocked in, or yielded in, or its own
//! throw, and goes on with its next step, each step catching that error.
//!
//! 10,000 cases run in `cargo test`; set `GREENLET_HUB_MODEL_CASES` for
//! more. A failure shrinks to a minimal program, printed in the message.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::hub::{self, time, Event, JoinError, JoinHandle, PutTimeoutError, Queue};
use greenlet::{Greenlet, SwitchError};
use proptest::prelude::*;

const QUEUES: usize = 3;
const EVENTS: usize = 2;

/// Queue 0 is unbounded, 1 holds one item, 2 holds two.
fn capacity(q: usize) -> Option<usize> {
    [None, Some(1), Some(2)][q]
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Yield,
    Sleep(u64),
    Put { q: usize, timeout: Option<u64> },
    Get { q: usize, timeout: Option<u64> },
    Set(usize),
    Clear(usize),
    Wait { e: usize, timeout: Option<u64> },
    Join(usize),
    Kill(usize),
    Idle,
    Spawn(usize),
    Throw(usize),
}

#[derive(Clone, Copy, Debug)]
struct Step {
    op: Op,
    /// Inside `with_timeout` of this many milliseconds.
    scope: Option<u64>,
}

#[derive(Clone, Debug)]
struct Program {
    /// Main spawns greenlets `0..initial`; the others wait for a `Spawn`.
    initial: usize,
    steps: Vec<Vec<Step>>,
}

impl Program {
    /// A program whose greenlets main spawns all.
    fn all(steps: Vec<Vec<Step>>) -> Program {
        Program {
            initial: steps.len(),
            steps,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Got(Option<u8>),
    Put(Result<(), u8>),
    Waited(bool),
    Joined(Result<u8, &'static str>),
    /// The step's `with_timeout` expired.
    Elapsed,
    /// A `Spawn` started its greenlet (`false`: it was already spawned).
    Spawned(bool),
    /// A `Throw` came back: its target had not started, and died of it
    /// (`false`: nothing to throw into).
    Threw(bool),
    /// Another greenlet threw into this step.
    Thrown,
}

/// `(greenlet, step, hub milliseconds, outcome)`.
type Entry = (usize, usize, u64, Outcome);

/// The value greenlet `g` puts at step `s`.
fn value(g: usize, s: usize) -> u8 {
    (g * 16 + s) as u8
}

// ---------------------------------------------------------------- real --

struct World {
    queues: Vec<Queue<u8>>,
    events: Vec<Event>,
    steps: Vec<Vec<Step>>,
    handles: RefCell<Vec<Option<JoinHandle<u8>>>>,
    /// Each greenlet once spawned.
    greenlets: RefCell<Vec<Option<Greenlet>>>,
    trace: RefCell<Vec<Entry>>,
    start: Instant,
}

/// What a `Throw` throws.
struct Boom;

/// Spawns greenlet `me` of the program.
fn spawn(w: &Rc<World>, me: usize) {
    let w2 = w.clone();
    let h = hub::spawn(move || {
        for (s, step) in w2.steps[me].iter().enumerate() {
            let call = || match step.scope {
                None => exec(&w2, me, s, step.op),
                Some(t) => {
                    hub::with_timeout(Duration::from_millis(t), || exec(&w2, me, s, step.op))
                        .unwrap_or(Outcome::Elapsed)
                }
            };
            let outcome = match panic::catch_unwind(AssertUnwindSafe(call)) {
                Ok(outcome) => outcome,
                Err(p) if p.is::<Boom>() => Outcome::Thrown,
                Err(p) => panic::resume_unwind(p),
            };
            let at = (time::now() - w2.start).as_millis() as u64;
            w2.trace.borrow_mut().push((me, s, at, outcome));
        }
        me as u8
    });
    w.greenlets.borrow_mut()[me] = Some(h.greenlet().clone());
    w.handles.borrow_mut()[me] = Some(h);
}

/// Greenlet `j`, if it is there to be aimed at by `me`.
fn target(w: &World, me: usize, j: usize) -> Option<Greenlet> {
    let g = w.greenlets.borrow()[j].clone()?;
    (j != me && !g.is_dead()).then_some(g)
}

fn exec(w: &Rc<World>, me: usize, s: usize, op: Op) -> Outcome {
    let ms = Duration::from_millis;
    match op {
        Op::Yield => {
            hub::yield_now();
            Outcome::Done
        }
        Op::Sleep(t) => {
            hub::sleep(ms(t));
            Outcome::Done
        }
        Op::Put { q, timeout: None } => {
            w.queues[q].put(value(me, s));
            Outcome::Put(Ok(()))
        }
        Op::Put {
            q,
            timeout: Some(t),
        } => Outcome::Put(
            w.queues[q]
                .put_timeout(value(me, s), ms(t))
                .map_err(PutTimeoutError::into_inner),
        ),
        Op::Get { q, timeout: None } => Outcome::Got(Some(w.queues[q].get())),
        Op::Get {
            q,
            timeout: Some(t),
        } => Outcome::Got(w.queues[q].get_timeout(ms(t))),
        Op::Set(e) => {
            w.events[e].set();
            Outcome::Done
        }
        Op::Clear(e) => {
            w.events[e].clear();
            Outcome::Done
        }
        Op::Wait { e, timeout: None } => {
            w.events[e].wait();
            Outcome::Waited(true)
        }
        Op::Wait {
            e,
            timeout: Some(t),
        } => Outcome::Waited(w.events[e].wait_timeout(ms(t))),
        Op::Join(j) if j == me => Outcome::Done,
        Op::Join(j) if w.greenlets.borrow()[j].is_none() => Outcome::Joined(Err("unspawned")),
        Op::Join(j) => {
            let h = w.handles.borrow_mut()[j].take();
            Outcome::Joined(match h {
                None => Err("gone"),
                Some(h) => match h.join() {
                    Ok(v) => Ok(v),
                    Err(JoinError::Killed) => Err("killed"),
                    Err(_) => Err("panicked"),
                },
            })
        }
        Op::Kill(j) => {
            if let Some(g) = target(w, me, j) {
                g.kill();
            }
            Outcome::Done
        }
        Op::Idle => {
            hub::idle();
            Outcome::Done
        }
        Op::Spawn(j) => {
            let new = w.greenlets.borrow()[j].is_none();
            if new {
                spawn(w, j);
            }
            Outcome::Spawned(new)
        }
        Op::Throw(j) => match target(w, me, j) {
            None => Outcome::Threw(false),
            Some(g) => match g.throw::<Boom, ()>(Boom) {
                Ok(()) => Outcome::Threw(true),
                Err(SwitchError::Thrown(p)) if p.is::<Boom>() => Outcome::Thrown,
                Err(e) => panic!("a throw came back with {e:?}"),
            },
        },
    }
}

fn run_real(prog: &Program) -> (Vec<Entry>, Vec<Vec<u8>>) {
    let n = prog.steps.len();
    let w = Rc::new(World {
        queues: (0..QUEUES)
            .map(|q| match capacity(q) {
                None => Queue::new(),
                Some(c) => Queue::bounded(c),
            })
            .collect(),
        events: (0..EVENTS).map(|_| Event::new()).collect(),
        steps: prog.steps.clone(),
        handles: RefCell::new((0..n).map(|_| None).collect()),
        greenlets: RefCell::new(vec![None; n]),
        trace: RefCell::new(Vec::new()),
        start: time::now(),
    });
    for me in 0..prog.initial {
        spawn(&w, me);
    }
    hub::run();
    // Whatever is left is blocked (or suspended in a throw) for good:
    // unwind it, then let the hub drop the dead from its ready queue.
    let left: Vec<Greenlet> = w.greenlets.borrow().iter().flatten().cloned().collect();
    for g in left {
        g.kill();
    }
    hub::run();
    let contents = w
        .queues
        .iter()
        .map(|q| std::iter::from_fn(|| q.try_get()).collect())
        .collect();
    let trace = w.trace.borrow().clone();
    w.handles.borrow_mut().clear();
    w.greenlets.borrow_mut().clear();
    (trace, contents)
}

// --------------------------------------------------------------- model --

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wake {
    Pending,
    Ready,
    TimedOut,
    Interrupted,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sleep,
    Get(usize),
    Put(usize, u8),
    Event(usize),
    Join(usize),
    Idle,
}

struct Wait {
    g: usize,
    wake: Wake,
    timer: Option<u64>,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Action {
    Wait(usize),
    Scope(usize),
}

struct Scope {
    fired: bool,
    timer: u64,
    wait: Option<usize>,
}

#[derive(Default)]
struct QueueM {
    items: VecDeque<u8>,
    cap: Option<usize>,
    getters: VecDeque<usize>,
    putters: VecDeque<usize>,
    /// Items handed to woken getters, by wait, until they run.
    handed: BTreeMap<usize, u8>,
    reserved_slots: usize,
}

#[derive(Default)]
struct EventM {
    set: bool,
    waiters: VecDeque<usize>,
}

#[derive(Default)]
struct G {
    steps: Vec<Step>,
    pc: usize,
    spawned: bool,
    started: bool,
    /// Suspended in a throw of its own.
    stuck: bool,
    dead: bool,
    result: Option<Result<u8, &'static str>>,
    handle_taken: bool,
    joiner: Option<usize>,
    /// The wait it is blocked in.
    wait: Option<usize>,
    /// Its active `with_timeout` scope.
    scope: Option<usize>,
}

/// How a greenlet left the CPU.
enum Left {
    /// Blocked, or yielded (it is on the ready queue).
    Switched,
    Finished,
    /// Threw into this greenlet, which runs next.
    Threw(usize),
}

#[derive(Default)]
struct Model {
    gs: Vec<G>,
    queues: Vec<QueueM>,
    events: Vec<EventM>,
    ready: VecDeque<usize>,
    round_left: usize,
    /// The waits of greenlets in `idle`, in call order.
    idlers: VecDeque<usize>,
    /// `(deadline, seq) -> action`.
    timers: BTreeMap<(u64, u64), Action>,
    seq: u64,
    waits: BTreeMap<usize, Wait>,
    next_wait: usize,
    scopes: BTreeMap<usize, Scope>,
    next_scope: usize,
    now: u64,
    trace: Vec<Entry>,
}

impl Model {
    fn add_timer(&mut self, deadline: u64, action: Action) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        self.timers.insert((deadline, seq), action);
        seq
    }

    fn cancel_timer(&mut self, seq: u64) {
        self.timers.retain(|&(_, s), _| s != seq);
    }

    fn new_wait(&mut self, g: usize, timeout: Option<u64>, kind: Kind) -> usize {
        let w = self.next_wait;
        self.next_wait += 1;
        let timer = timeout.map(|t| self.add_timer(self.now + t, Action::Wait(w)));
        self.waits.insert(
            w,
            Wait {
                g,
                wake: Wake::Pending,
                timer,
                kind,
            },
        );
        self.gs[g].wait = Some(w);
        if let Some(s) = self.gs[g].scope {
            self.scopes.get_mut(&s).unwrap().wait = Some(w);
        }
        w
    }

    fn wake(&mut self, w: usize, why: Wake) -> bool {
        let Some(wait) = self.waits.get_mut(&w) else {
            return false;
        };
        if wait.wake != Wake::Pending {
            return false;
        }
        wait.wake = why;
        let (g, timer) = (wait.g, wait.timer.take());
        if let Some(t) = timer {
            self.cancel_timer(t);
        }
        self.ready.push_back(g);
        true
    }

    /// Hands `v` to the first blocked getter that can still take it;
    /// gives it back if there is none.
    fn hand_to_getter(&mut self, q: usize, v: u8) -> Result<(), u8> {
        while let Some(w) = self.queues[q].getters.pop_front() {
            if self.wake(w, Wake::Ready) {
                self.queues[q].handed.insert(w, v);
                return Ok(());
            }
        }
        Err(v)
    }

    /// Adds `v` to a queue with room: to a blocked getter, or at the back.
    fn add(&mut self, q: usize, v: u8) {
        if let Err(v) = self.hand_to_getter(q, v) {
            self.queues[q].items.push_back(v);
        }
    }

    fn has_space(&self, q: usize) -> bool {
        let m = &self.queues[q];
        m.cap
            .is_none_or(|c| m.items.len() + m.handed.len() + m.reserved_slots < c)
    }

    fn wake_putter(&mut self, q: usize) {
        while self.has_space(q) {
            let Some(w) = self.queues[q].putters.pop_front() else {
                return;
            };
            if self.wake(w, Wake::Ready) {
                self.queues[q].reserved_slots += 1;
                return;
            }
        }
    }

    /// Ends wait `w` of its greenlet, unlinking it as its primitive does;
    /// `used`: the call took what it was woken for.
    fn end_wait(&mut self, w: usize, used: bool) -> Wake {
        let wait = self.waits.remove(&w).unwrap();
        if let Some(t) = wait.timer {
            self.cancel_timer(t);
        }
        let g = wait.g;
        self.gs[g].wait = None;
        if let Some(s) = self.gs[g].scope {
            self.scopes.get_mut(&s).unwrap().wait = None;
        }
        let ready = wait.wake == Wake::Ready;
        match wait.kind {
            Kind::Sleep => {}
            Kind::Get(q) => match (ready, used) {
                (true, true) => {}
                (true, false) => {
                    // Handed an item it did not take: to the next getter,
                    // or back to the front.
                    let v = self.queues[q].handed.remove(&w).unwrap();
                    if let Err(v) = self.hand_to_getter(q, v) {
                        self.queues[q].items.push_front(v);
                    }
                }
                (false, _) => self.queues[q].getters.retain(|x| *x != w),
            },
            Kind::Put(q, _) => match (ready, used) {
                (true, true) => {}
                (true, false) => {
                    self.queues[q].reserved_slots -= 1;
                    self.wake_putter(q);
                }
                (false, _) => self.queues[q].putters.retain(|x| *x != w),
            },
            Kind::Event(e) => {
                if !ready {
                    self.events[e].waiters.retain(|x| *x != w);
                }
            }
            Kind::Join(j) => {
                if self.gs[j].joiner == Some(w) {
                    self.gs[j].joiner = None;
                }
            }
            Kind::Idle => {
                if !ready {
                    self.idlers.retain(|x| *x != w);
                }
            }
        }
        wait.wake
    }

    fn end_scope(&mut self, g: usize) {
        if let Some(s) = self.gs[g].scope.take() {
            let scope = self.scopes.remove(&s).unwrap();
            self.cancel_timer(scope.timer);
        }
    }

    fn finish(&mut self, g: usize, result: Result<u8, &'static str>) {
        self.gs[g].dead = true;
        self.gs[g].result = Some(result);
        if let Some(w) = self.gs[g].joiner.take() {
            self.wake(w, Wake::Ready);
        }
    }

    fn record(&mut self, g: usize, outcome: Outcome) {
        let s = self.gs[g].pc;
        self.end_scope(g);
        self.trace.push((g, s, self.now, outcome));
        self.gs[g].pc += 1;
    }

    /// Completes the blocked call of `g` after its wake-up.
    fn complete(&mut self, g: usize) {
        let w = self.gs[g].wait.unwrap();
        let wake = self.waits[&w].wake;
        let kind = self.waits[&w].kind;
        if wake == Wake::Interrupted {
            self.end_wait(w, false);
            return self.record(g, Outcome::Elapsed);
        }
        let outcome = match (kind, wake) {
            (Kind::Sleep | Kind::Idle, _) => Outcome::Done,
            (Kind::Get(q), Wake::Ready) => {
                let item = self.queues[q].handed.remove(&w);
                self.wake_putter(q);
                Outcome::Got(item)
            }
            (Kind::Get(_), _) => Outcome::Got(None),
            (Kind::Put(q, v), Wake::Ready) => {
                let m = &mut self.queues[q];
                m.reserved_slots -= 1;
                self.add(q, v);
                Outcome::Put(Ok(()))
            }
            (Kind::Put(_, v), _) => Outcome::Put(Err(v)),
            (Kind::Event(_), Wake::Ready) => Outcome::Waited(true),
            (Kind::Event(e), _) => Outcome::Waited(self.events[e].set),
            (Kind::Join(j), _) => Outcome::Joined(self.gs[j].result.unwrap()),
        };
        self.end_wait(w, true);
        self.record(g, outcome);
    }

    fn kill(&mut self, j: usize) {
        if self.gs[j].dead {
            return;
        }
        self.gs[j].stuck = false;
        if self.gs[j].started {
            if let Some(w) = self.gs[j].wait {
                self.end_wait(w, false);
            }
            self.end_scope(j);
        }
        self.finish(j, Err("killed"));
    }

    /// Whether `g` can take a kill or a throw from `me`.
    fn is_target(&self, me: usize, j: usize) -> bool {
        j != me && self.gs[j].spawned && !self.gs[j].dead
    }

    /// Takes `g`'s entry off the ready queue, as the hub does for a
    /// greenlet resumed by something else than the hub.
    fn forget_ready(&mut self, g: usize) {
        if let Some(i) = self.ready.iter().position(|x| *x == g) {
            self.ready.remove(i);
            if i < self.round_left {
                self.round_left -= 1;
            }
        }
    }

    /// Resumes `g`, just thrown into: the call it was suspended in (a
    /// blocking call, a yield, a throw of its own) ends with the error,
    /// which its step catches.
    fn resume_thrown(&mut self, g: usize) {
        self.gs[g].stuck = false;
        self.forget_ready(g);
        if let Some(w) = self.gs[g].wait {
            self.end_wait(w, false);
        }
        self.record(g, Outcome::Thrown);
    }

    /// Runs `g` until it switches away or finishes.
    fn run(&mut self, g: usize) -> Left {
        if !self.gs[g].started {
            self.gs[g].started = true;
        } else if self.gs[g].wait.is_some() {
            self.complete(g);
        } else {
            // Back from a yield.
            self.record(g, Outcome::Done);
        }
        self.steps(g)
    }

    /// Runs `g`'s steps until it switches away or finishes.
    fn steps(&mut self, g: usize) -> Left {
        loop {
            let pc = self.gs[g].pc;
            let Some(step) = self.gs[g].steps.get(pc).copied() else {
                self.finish(g, Ok(g as u8));
                return Left::Finished;
            };
            if let Some(t) = step.scope {
                let s = self.next_scope;
                self.next_scope += 1;
                let timer = self.add_timer(self.now + t, Action::Scope(s));
                self.scopes.insert(
                    s,
                    Scope {
                        fired: false,
                        timer,
                        wait: None,
                    },
                );
                self.gs[g].scope = Some(s);
            }
            let outcome = match step.op {
                Op::Yield => {
                    self.ready.push_back(g);
                    return Left::Switched;
                }
                Op::Sleep(t) => {
                    self.new_wait(g, Some(t), Kind::Sleep);
                    return Left::Switched;
                }
                Op::Put { q, timeout } => {
                    if self.has_space(q) {
                        self.add(q, value(g, pc));
                        Outcome::Put(Ok(()))
                    } else {
                        let w = self.new_wait(g, timeout, Kind::Put(q, value(g, pc)));
                        self.queues[q].putters.push_back(w);
                        return Left::Switched;
                    }
                }
                Op::Get { q, timeout } => {
                    let m = &mut self.queues[q];
                    if !m.items.is_empty() {
                        let item = m.items.pop_front();
                        self.wake_putter(q);
                        Outcome::Got(item)
                    } else {
                        let w = self.new_wait(g, timeout, Kind::Get(q));
                        self.queues[q].getters.push_back(w);
                        return Left::Switched;
                    }
                }
                Op::Set(e) => {
                    self.events[e].set = true;
                    while let Some(w) = self.events[e].waiters.pop_front() {
                        self.wake(w, Wake::Ready);
                    }
                    Outcome::Done
                }
                Op::Clear(e) => {
                    self.events[e].set = false;
                    Outcome::Done
                }
                Op::Wait { e, timeout } => {
                    if self.events[e].set {
                        Outcome::Waited(true)
                    } else {
                        let w = self.new_wait(g, timeout, Kind::Event(e));
                        self.events[e].waiters.push_back(w);
                        return Left::Switched;
                    }
                }
                Op::Join(j) if j == g => Outcome::Done,
                Op::Join(j) if !self.gs[j].spawned => Outcome::Joined(Err("unspawned")),
                Op::Join(j) => {
                    if std::mem::replace(&mut self.gs[j].handle_taken, true) {
                        Outcome::Joined(Err("gone"))
                    } else if let Some(r) = self.gs[j].result {
                        Outcome::Joined(r)
                    } else {
                        let w = self.new_wait(g, None, Kind::Join(j));
                        self.gs[j].joiner = Some(w);
                        return Left::Switched;
                    }
                }
                Op::Kill(j) => {
                    if self.is_target(g, j) {
                        self.kill(j);
                    }
                    Outcome::Done
                }
                Op::Spawn(j) => {
                    let new = !std::mem::replace(&mut self.gs[j].spawned, true);
                    if new {
                        self.ready.push_back(j);
                    }
                    Outcome::Spawned(new)
                }
                Op::Throw(j) if !self.is_target(g, j) => Outcome::Threw(false),
                Op::Throw(j) if !self.gs[j].started => {
                    self.finish(j, Err("panicked"));
                    Outcome::Threw(true)
                }
                Op::Throw(j) => {
                    self.gs[g].stuck = true;
                    return Left::Threw(j);
                }
                Op::Idle => {
                    let w = self.new_wait(g, None, Kind::Idle);
                    self.idlers.push_back(w);
                    return Left::Switched;
                }
            };
            self.record(g, outcome);
        }
    }

    fn pop_ready(&mut self) -> Option<usize> {
        while self.round_left > 0 {
            self.round_left -= 1;
            let g = self.ready.pop_front()?;
            if !self.gs[g].dead {
                return Some(g);
            }
        }
        None
    }

    fn next_for_handoff(&mut self) -> Option<usize> {
        if self.round_left == 0 {
            if !self.timers.is_empty() {
                return None;
            }
            self.round_left = self.ready.len();
        }
        self.pop_ready()
    }

    fn fire_due_timers(&mut self) {
        while let Some((&(deadline, seq), &action)) = self.timers.iter().next() {
            if deadline > self.now {
                return;
            }
            self.timers.remove(&(deadline, seq));
            match action {
                Action::Wait(w) => {
                    self.wake(w, Wake::TimedOut);
                }
                Action::Scope(s) => {
                    let scope = self.scopes.get_mut(&s).unwrap();
                    scope.fired = true;
                    if let Some(w) = scope.wait {
                        self.wake(w, Wake::Interrupted);
                    }
                }
            }
        }
    }

    fn hub_loop(&mut self) {
        loop {
            self.fire_due_timers();
            self.round_left = self.ready.len();
            if let Some(mut g) = self.pop_ready() {
                loop {
                    let mut left = self.run(g);
                    while let Left::Threw(j) = left {
                        self.resume_thrown(j);
                        left = self.steps(j);
                    }
                    match self.next_for_handoff() {
                        Some(next) => g = next,
                        None => break,
                    }
                }
                continue;
            }
            // Nothing ready, and what is due taken: every idle waiter
            // wakes, in call order, before the clock may jump.
            if !self.idlers.is_empty() {
                while let Some(w) = self.idlers.pop_front() {
                    self.wake(w, Wake::Ready);
                }
                continue;
            }
            match self.timers.keys().next() {
                Some(&(deadline, _)) => self.now = deadline,
                None => return,
            }
        }
    }
}

fn run_model(prog: &Program) -> (Vec<Entry>, Vec<Vec<u8>>) {
    let mut m = Model {
        queues: (0..QUEUES)
            .map(|q| QueueM {
                cap: capacity(q),
                ..QueueM::default()
            })
            .collect(),
        events: (0..EVENTS).map(|_| EventM::default()).collect(),
        ..Model::default()
    };
    for (g, steps) in prog.steps.iter().enumerate() {
        let spawned = g < prog.initial;
        m.gs.push(G {
            steps: steps.clone(),
            spawned,
            ..G::default()
        });
        if spawned {
            m.ready.push_back(g);
        }
    }
    m.hub_loop();
    let contents = m
        .queues
        .iter()
        .map(|q| q.items.iter().copied().collect())
        .collect();
    (m.trace, contents)
}

// ---------------------------------------------------------------- test --

fn op(greenlets: usize) -> impl Strategy<Value = Op> {
    let t = 1u64..=3;
    let q = 0..QUEUES;
    let e = 0..EVENTS;
    let timeout = proptest::option::of(t.clone());
    prop_oneof![
        2 => Just(Op::Yield),
        2 => t.prop_map(Op::Sleep),
        4 => (q.clone(), timeout.clone()).prop_map(|(q, timeout)| Op::Put { q, timeout }),
        4 => (q, timeout.clone()).prop_map(|(q, timeout)| Op::Get { q, timeout }),
        1 => e.clone().prop_map(Op::Set),
        1 => e.clone().prop_map(Op::Clear),
        2 => (e, timeout).prop_map(|(e, timeout)| Op::Wait { e, timeout }),
        1 => (0..greenlets).prop_map(Op::Join),
        1 => (0..greenlets).prop_map(Op::Kill),
        1 => Just(Op::Idle),
        1 => (0..greenlets).prop_map(Op::Spawn),
        1 => (0..greenlets).prop_map(Op::Throw),
    ]
}

fn program() -> impl Strategy<Value = Program> {
    (1usize..=5).prop_flat_map(|n| {
        let step = (op(n), proptest::option::weighted(0.2, 1u64..=3))
            .prop_map(|(op, scope)| Step { op, scope });
        let steps = proptest::collection::vec(proptest::collection::vec(step, 0..=10), n);
        (1..=n, steps).prop_map(|(initial, steps)| Program { initial, steps })
    })
}

fn cases() -> u32 {
    std::env::var("GREENLET_HUB_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_hub_runs_programs_as_the_model_does(prog in program()) {
        let real = {
            let _paused = Paused::new();
            run_real(&prog)
        };
        let model = run_model(&prog);
        prop_assert_eq!(&real.0, &model.0, "traces differ");
        prop_assert_eq!(&real.1, &model.1, "queue contents differ");
    }
}

/// Asserts that the real hub, on the paused clock, and the model both
/// trace `prog` as `expected`.
fn assert_both_trace(prog: &Program, expected: &[Entry]) {
    let real = {
        let _paused = Paused::new();
        run_real(prog)
    };
    assert_eq!(real.0, expected, "the real hub");
    assert_eq!(run_model(prog).0, expected, "the model");
}

/// Resumes the clock however the case ends.
struct Paused;

impl Paused {
    fn new() -> Paused {
        time::pause();
        Paused
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        time::resume();
    }
}

#[test]
fn a_set_wakes_the_waiters_in_order_after_the_sleeper_that_set_it() {
    let s = |op| Step { op, scope: None };
    let prog = Program::all(vec![
        vec![
            s(Op::Wait {
                e: 0,
                timeout: None,
            }),
            s(Op::Yield),
        ],
        vec![s(Op::Wait {
            e: 0,
            timeout: None,
        })],
        vec![s(Op::Sleep(2)), s(Op::Set(0))],
    ]);
    let expected = vec![
        (2, 0, 2, Outcome::Done),
        (2, 1, 2, Outcome::Done),
        (0, 0, 2, Outcome::Waited(true)),
        (1, 0, 2, Outcome::Waited(true)),
        (0, 1, 2, Outcome::Done),
    ];
    assert_both_trace(&prog, &expected);
}

#[test]
fn idle_waiters_wake_in_call_order_once_nothing_is_ready_before_the_clock_jumps() {
    let s = |op| Step { op, scope: None };
    let prog = Program::all(vec![
        vec![s(Op::Idle), s(Op::Yield)],
        vec![s(Op::Yield), s(Op::Yield)],
        vec![s(Op::Sleep(1)), s(Op::Idle)],
        vec![
            s(Op::Idle),
            Step {
                op: Op::Idle,
                scope: Some(2),
            },
        ],
    ]);
    let expected = vec![
        (1, 0, 0, Outcome::Done),
        (1, 1, 0, Outcome::Done),
        // Nothing ready at 0 ms: both idle waiters, in call order, before
        // the clock jumps to the sleeper's 1 ms.
        (0, 0, 0, Outcome::Done),
        (3, 0, 0, Outcome::Done),
        (0, 1, 0, Outcome::Done),
        // 3 waits in idle again: once 0's yield ran, nothing is ready at
        // 0 ms, so it wakes before its 2 ms scope or the clock's jump.
        (3, 1, 0, Outcome::Done),
        (2, 0, 1, Outcome::Done),
        (2, 1, 1, Outcome::Done),
    ];
    assert_both_trace(&prog, &expected);
}

#[test]
fn a_throw_runs_its_target_at_once_and_leaves_the_thrower_suspended_until_thrown_into() {
    let s = |op| Step { op, scope: None };
    let prog = Program::all(vec![
        vec![
            s(Op::Wait {
                e: 0,
                timeout: None,
            }),
            s(Op::Yield),
        ],
        vec![s(Op::Throw(0)), s(Op::Sleep(1))],
        vec![s(Op::Throw(1))],
    ]);
    let expected = vec![
        // 1's throw ends 0's wait at once; 0 yields, and the round goes
        // on with 2, whose throw resumes 1 out of its own throw.
        (0, 0, 0, Outcome::Thrown),
        (1, 0, 0, Outcome::Thrown),
        (0, 1, 0, Outcome::Done),
        (1, 1, 1, Outcome::Done),
        // 2 stays suspended in its throw: nothing switches to it.
    ];
    assert_both_trace(&prog, &expected);
}
