//! A task scheduler driven by generators, in the spirit of Python's
//! `multitask`: a task is a two-way generator that yields *calls*
//! (`Get(queue)`, `Put(queue, item)`, `Sleep(ms)`) and is sent their
//! results, the way a `multitask` task writes `item = (yield queue.get())`.
//! The scheduler below is a small loop over a ready queue, sleepers and
//! bounded queues; it is an illustration, not part of the crate (the
//! crate's scheduler is [`greenlet::hub`], where blocking calls are plain
//! function calls).
//!
//! The story is `hub_prodcons`'s: one producer and two consumers share a
//! queue of two items, and the consumers sleep after each item. The
//! scheduler keeps its own clock in milliseconds: when nothing is ready it
//! jumps to the earliest sleeper's wake-up time (a real one would sleep
//! until then), so the trace is the same on every run.
//!
//! Run with `cargo run --example multitask_prodcons`.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;

use greenlet::{Generator, GeneratorState, Yielder};

/// How many items the producer makes.
const ITEMS: u32 = 6;

/// Which queue of the scheduler.
type QueueId = usize;

/// What a task asks the scheduler for: it yields one and is suspended
/// until the scheduler sends back the [`Reply`].
enum Call {
    /// The next item of a queue (waits while it is empty).
    Get(QueueId),
    /// Adds an item to a queue (waits while it is full).
    Put(QueueId, Option<u32>),
    /// Waits this many milliseconds.
    Sleep(u64),
}

/// What the scheduler sends a task.
enum Reply {
    /// The first resume, and the result of `Put` and `Sleep`.
    Ok,
    /// The result of `Get`.
    Item(Option<u32>),
}

/// A task: yields calls, is sent replies.
type Task = Generator<Call, (), Reply>;

/// The calls as functions, so a task reads like blocking code.
fn get(y: &Yielder<Call, Reply>, queue: QueueId) -> Option<u32> {
    match y.yield_(Call::Get(queue)) {
        Reply::Item(item) => item,
        Reply::Ok => panic!("the scheduler answers Get with an item"),
    }
}

fn put(y: &Yielder<Call, Reply>, queue: QueueId, item: Option<u32>) {
    y.yield_(Call::Put(queue, item));
}

fn sleep(y: &Yielder<Call, Reply>, ms: u64) {
    y.yield_(Call::Sleep(ms));
}

/// A bounded queue and the tasks waiting on it. It never hands an item to
/// a waiting task directly (the hub's `Queue` hands a put's item straight
/// to a blocked getter): waking a getter reserves an item for it, waking a
/// putter reserves a place, and the woken task takes it when it runs.
#[derive(Default)]
struct Queue {
    items: VecDeque<Option<u32>>,
    capacity: usize,
    getters: VecDeque<usize>,
    putters: VecDeque<(usize, Option<u32>)>,
    reserved_items: usize,
    reserved_slots: usize,
}

impl Queue {
    fn has_space(&self) -> bool {
        self.items.len() + self.reserved_slots < self.capacity
    }
}

/// What a task is resumed with once it runs again.
enum Wake {
    /// Send it this reply.
    Reply(Reply),
    /// It waited in `Get`: take the item reserved for it.
    Take(QueueId),
    /// It waited in `Put`: put its item in the place reserved for it.
    Place(QueueId, Option<u32>),
}

/// Runs tasks until none is ready and none sleeps.
#[derive(Default)]
struct Scheduler {
    tasks: Vec<Option<Task>>,
    /// Tasks to resume, in order.
    ready: VecDeque<(usize, Wake)>,
    /// (wake-up time, order of arrival, task): earliest first.
    sleepers: BinaryHeap<Reverse<(u64, u64, usize)>>,
    queues: Vec<Queue>,
    /// The scheduler's clock, in milliseconds.
    now: u64,
    arrivals: u64,
}

impl Scheduler {
    fn queue(&mut self, capacity: usize) -> QueueId {
        self.queues.push(Queue {
            capacity,
            ..Queue::default()
        });
        self.queues.len() - 1
    }

    fn spawn(&mut self, task: Task) {
        self.tasks.push(Some(task));
        self.ready
            .push_back((self.tasks.len() - 1, Wake::Reply(Reply::Ok)));
    }

    fn run(&mut self) {
        loop {
            while let Some((id, wake)) = self.ready.pop_front() {
                let mut reply = match wake {
                    Wake::Reply(reply) => reply,
                    Wake::Take(q) => {
                        self.queues[q].reserved_items -= 1;
                        Reply::Item(self.take(q))
                    }
                    Wake::Place(q, item) => {
                        self.queues[q].reserved_slots -= 1;
                        self.place(q, item);
                        Reply::Ok
                    }
                };
                // Resume the task until it makes a call that must wait.
                loop {
                    let task = self.tasks[id].as_mut().expect("a ready task is alive");
                    match task.resume(reply) {
                        GeneratorState::Yielded(call) => match self.call(id, call) {
                            Some(now) => reply = now,
                            None => break,
                        },
                        GeneratorState::Complete(()) | GeneratorState::Exhausted => {
                            self.tasks[id] = None;
                            break;
                        }
                    }
                }
            }
            // Nothing ready: on to the earliest wake-up time, if any, and
            // every sleeper due then.
            let Some(&Reverse((wake, _, _))) = self.sleepers.peek() else {
                break;
            };
            self.now = wake;
            while let Some(&Reverse((wake, _, id))) = self.sleepers.peek() {
                if wake > self.now {
                    break;
                }
                self.sleepers.pop();
                self.ready.push_back((id, Wake::Reply(Reply::Ok)));
            }
        }
    }

    /// Carries out a task's call: its reply when it can be answered now,
    /// `None` when the task waits.
    fn call(&mut self, id: usize, call: Call) -> Option<Reply> {
        match call {
            Call::Sleep(ms) => {
                self.arrivals += 1;
                self.sleepers
                    .push(Reverse((self.now + ms, self.arrivals, id)));
                None
            }
            Call::Get(q) => {
                let queue = &mut self.queues[q];
                if queue.items.len() > queue.reserved_items {
                    Some(Reply::Item(self.take(q)))
                } else {
                    queue.getters.push_back(id);
                    None
                }
            }
            Call::Put(q, item) => {
                if self.queues[q].has_space() {
                    self.place(q, item);
                    Some(Reply::Ok)
                } else {
                    self.queues[q].putters.push_back((id, item));
                    None
                }
            }
        }
    }

    /// Takes the front item and wakes a waiting putter if a place is free.
    fn take(&mut self, q: QueueId) -> Option<u32> {
        let queue = &mut self.queues[q];
        let item = queue.items.pop_front().expect("an item is there");
        if queue.has_space() {
            if let Some((putter, item)) = queue.putters.pop_front() {
                queue.reserved_slots += 1;
                self.ready.push_back((putter, Wake::Place(q, item)));
            }
        }
        item
    }

    /// Adds an item and wakes a waiting getter for it.
    fn place(&mut self, q: QueueId, item: Option<u32>) {
        let queue = &mut self.queues[q];
        queue.items.push_back(item);
        if queue.items.len() > queue.reserved_items {
            if let Some(getter) = queue.getters.pop_front() {
                queue.reserved_items += 1;
                self.ready.push_back((getter, Wake::Take(q)));
            }
        }
    }
}

/// Runs the producer and both consumers; returns the trace they wrote.
pub fn run_trace() -> Vec<String> {
    let trace = Rc::new(RefCell::new(Vec::new()));
    let mut scheduler = Scheduler::default();
    // Room for two items: the producer waits when both consumers lag.
    let queue = scheduler.queue(2);

    for name in ["consumer A", "consumer B"] {
        let log = trace.clone();
        scheduler.spawn(Generator::two_way(
            move |y: &Yielder<Call, Reply>, _start: Reply| {
                // `None` means the producer is done.
                while let Some(item) = get(y, queue) {
                    log.borrow_mut().push(format!("{name}: got item {item}"));
                    sleep(y, 2);
                }
                log.borrow_mut().push(format!("{name}: done"));
            },
        ));
    }

    let log = trace.clone();
    scheduler.spawn(Generator::two_way(
        move |y: &Yielder<Call, Reply>, _start: Reply| {
            for item in 1..=ITEMS {
                put(y, queue, Some(item)); // waits while the queue is full
                log.borrow_mut().push(format!("producer: put item {item}"));
            }
            for _ in 0..2 {
                put(y, queue, None);
            }
            log.borrow_mut().push("producer: done".to_string());
        },
    ));

    scheduler.run();
    let lines = trace.borrow().clone();
    lines
}

#[allow(dead_code)]
fn main() {
    for line in run_trace() {
        println!("{line}");
    }
}
