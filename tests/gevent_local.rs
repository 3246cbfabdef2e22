//! gevent `src/gevent/tests/test__local.py` (TestGeventLocal), with
//! monkey-patched `Thread`s as hub-spawned greenlets and `local()`
//! attributes as `greenlet_local!` statics.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use greenlet::greenlet_local;
use greenlet::hub;

thread_local! {
    static CREATED: Cell<usize> = const { Cell::new(0) };
    static DELETED: Cell<usize> = const { Cell::new(0) };
}

struct Sentinel;
impl Sentinel {
    fn new() -> Sentinel {
        CREATED.with(|c| c.set(c.get() + 1));
        Sentinel
    }
}
impl Drop for Sentinel {
    fn drop(&mut self) {
        DELETED.with(|c| c.set(c.get() + 1));
    }
}

greenlet_local! {
    static ATTR: Cell<Option<i32>> = Cell::new(None);
    static PATH_A: RefCell<String> = RefCell::new(String::new());
    static PATH_B: RefCell<String> = RefCell::new(String::new());
    static MY_LOCAL: Sentinel = Sentinel::new();
    static FIZZ: Cell<Option<i32>> = Cell::new(None);
}

// test__local.py TestGeventLocal.test_local_opts_not_subclassed
#[test]
fn test_local_opts_not_subclassed() {
    ATTR.with(|a| a.set(Some(1)));
    assert_eq!(ATTR.with(Cell::get), Some(1));
}

// test__local.py TestGeventLocal.test_attribute_error: an attribute set in
// another greenlet is not seen here.
#[test]
fn test_attribute_error() {
    assert_eq!(FIZZ.with(Cell::get), None);
    let g = hub::spawn(|| FIZZ.with(|f| f.set(Some(1))));
    g.join().unwrap();
    assert_eq!(FIZZ.with(Cell::get), None);
}

// test__local.py TestGeventLocal.test_objects: two locals are independent.
#[test]
fn test_objects() {
    PATH_A.with(|p| *p.borrow_mut() = "123".into());
    PATH_B.with(|p| *p.borrow_mut() = "123".into());
    assert_eq!(
        PATH_A.with(|p| p.borrow().clone()),
        PATH_B.with(|p| p.borrow().clone())
    );
    PATH_B.with(|p| *p.borrow_mut() = "321".into());
    assert_ne!(
        PATH_A.with(|p| p.borrow().clone()),
        PATH_B.with(|p| p.borrow().clone())
    );
}

// test__local.py TestGeventLocal.test_locals_collected_when_greenlet_dead_but_still_referenced
#[test]
fn test_locals_collected_when_greenlet_dead_but_still_referenced() {
    let greenlets: Vec<_> = (0..5)
        .map(|_| hub::spawn(|| MY_LOCAL.with(|_| ())))
        .collect();
    hub::yield_now();
    assert_eq!(CREATED.with(Cell::get), greenlets.len());
    for g in &greenlets {
        assert!(g.is_finished());
    }
    hub::yield_now();
    // The handles are still referenced; the sentinels must be gone.
    assert_eq!(DELETED.with(Cell::get), greenlets.len());
}

// Per-greenlet values across switches (the point of `local`): each of two
// greenlets sets its own value, yields, and reads its own back.
#[test]
fn test_local_per_greenlet_across_switches() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let hs: Vec<_> = (0..3)
        .map(|i| {
            let seen = seen.clone();
            hub::spawn(move || {
                ATTR.with(|a| a.set(Some(i)));
                hub::yield_now();
                seen.borrow_mut().push(ATTR.with(Cell::get));
            })
        })
        .collect();
    hub::join_all(hs);
    assert_eq!(*seen.borrow(), [Some(0), Some(1), Some(2)]);
    assert_eq!(ATTR.with(Cell::get), None);
}

// Killed greenlets drop their locals too (gevent: greenlet dead -> local
// dict collected).
#[test]
fn test_locals_collected_when_greenlet_killed() {
    let g = hub::spawn(|| {
        MY_LOCAL.with(|_| ());
        hub::sleep(std::time::Duration::from_secs(3600));
    });
    hub::yield_now();
    assert_eq!(CREATED.with(Cell::get), 1);
    g.kill();
    assert_eq!(DELETED.with(Cell::get), 1);
}
