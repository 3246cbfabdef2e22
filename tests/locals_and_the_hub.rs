//! Greenlet-locals whose destructors use the hub. The crate keeps some of
//! its own bookkeeping in greenlet-locals (a greenlet's `with_timeout`
//! scopes, its daemon mark), which the destructors' blocking calls read
//! while the values are dropped: in whatever order the values go, those
//! calls work. And a kill that lands while one destructor is suspended is
//! not refused by the next one.
//!
//! One test per process section below runs in order inside a single test
//! function: the slots of `Local`s go by first use in the process, and the
//! user's local must be used before the crate's own for the order to
//! matter.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use greenlet::greenlet_local;
use greenlet::hub::{self, time};

const MS: Duration = Duration::from_millis(1);

/// Blocks in its destructor, then counts itself.
struct BlocksOnDrop(Rc<Cell<u32>>);

impl Drop for BlocksOnDrop {
    fn drop(&mut self) {
        hub::sleep(MS);
        // `with_timeout` and a daemon mark from a destructor too.
        assert_eq!(hub::with_timeout(Duration::from_secs(1), || 3), Ok(3));
        self.0.set(self.0.get() + 1);
    }
}

greenlet_local! {
    static FIRST: RefCell<Option<BlocksOnDrop>> = RefCell::new(None);
    static SECOND: RefCell<Option<BlocksOnDrop>> = RefCell::new(None);
}

#[test]
fn local_destructors_block_whatever_the_crates_own_locals_do() {
    // These slots come before the crate's own.
    FIRST.with(|_| ());
    SECOND.with(|_| ());
    time::pause();

    // With a daemon on the thread and a `with_timeout` live in main, so the
    // blocking calls read the crate's locals.
    let _daemon = hub::spawn_daemon(|| loop {
        hub::sleep(Duration::from_secs(3600));
    });
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let outcome = hub::with_timeout(Duration::from_secs(3600), move || {
        let h = hub::spawn(move || {
            FIRST.with(|f| *f.borrow_mut() = Some(BlocksOnDrop(d)));
            hub::with_timeout(Duration::from_secs(60), || hub::sleep(MS)).unwrap();
            7
        });
        while !h.is_finished() {
            time::advance(MS);
        }
        h.join()
    });
    assert_eq!(outcome.unwrap().unwrap(), 7);
    assert_eq!(drops.get(), 1, "the destructor ran to its end");

    // A kill that lands while one destructor is suspended: the next one's
    // blocking call fails instead of refusing the kill, and the ready
    // greenlet it would have handed off to still runs.
    let drops = Rc::new(Cell::new(0));
    let (a, b) = (drops.clone(), drops.clone());
    let victim = hub::spawn(move || {
        FIRST.with(|f| *f.borrow_mut() = Some(BlocksOnDrop(a)));
        SECOND.with(|s| *s.borrow_mut() = Some(BlocksOnDrop(b)));
    });
    hub::yield_now(); // it returns, then blocks in a destructor
    assert!(!victim.is_finished());
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let bystander = hub::spawn(move || r.set(true));
    assert!(victim.greenlet().try_kill().is_ok(), "the kill completes");
    assert!(victim.greenlet().is_dead());
    assert!(matches!(victim.join(), Err(hub::JoinError::Killed)));
    assert_eq!(drops.get(), 0, "neither destructor got to its end");
    bystander.join().unwrap();
    assert!(ran.get());
    time::resume();
}
