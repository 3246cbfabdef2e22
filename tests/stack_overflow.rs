//! An overflow on a default-size stack, which lives in the middle of a
//! batch of stacks mapped together, still hits its own guard page and
//! still names the greenlet. Runs in a child process (this test binary,
//! re-run with an environment variable).

#[path = "support/child.rs"]
mod child;
#[path = "support/recurse.rs"]
mod recurse;

use std::os::unix::process::ExitStatusExt;

use greenlet::Greenlet;
use recurse::recurse;

const CHILD: &str = "GREENLET_STACK_OVERFLOW_CHILD";

/// In a child: creates three greenlets (so the next stack has neighbours
/// of its batch on both sides: live ones below, pooled ones above), then
/// one named `name` that recurses until its stack overflows.
fn overflow_in_a_batch(name: &str) {
    let below: Vec<Greenlet> = (0..3).map(|_| Greenlet::new(|()| ())).collect();
    let g = Greenlet::builder()
        .name(name)
        .build(|()| recurse(0))
        .unwrap();
    assert!(greenlet::stats().stacks_pooled > 0, "a batch was mapped");
    let _ = g.switch::<(), u64>(());
    drop(below);
}

#[test]
fn batch_overflow_child() {
    if std::env::var(CHILD).is_ok() {
        overflow_in_a_batch("batch-deep");
    }
}

/// Runs the child test `name` (which overflows a stack) and checks that
/// it aborted with `message` on stderr.
fn assert_overflow(name: &str, env: &str, message: &str) {
    assert_overflow_in(name, env, "1", message);
}

/// [`assert_overflow`] with `env` set to `mode`, for a child test that
/// has several scenarios.
fn assert_overflow_in(name: &str, env: &str, mode: &str, message: &str) {
    let out = child::run(name, env, mode);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(message), "stderr: {stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{:?}", out.status);
}

#[test]
fn an_overflow_on_a_batch_mapped_stack_names_the_greenlet() {
    assert_overflow(
        "batch_overflow_child",
        CHILD,
        "greenlet 'batch-deep' (id 4) overflowed its stack of 1024 KiB; \
         raise it with Builder::stack_size",
    );
}

const SMALL_CHILD: &str = "GREENLET_SMALL_STACK_OVERFLOW_CHILD";

#[test]
fn small_pooled_overflow_child() {
    if std::env::var(SMALL_CHILD).is_ok() {
        greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(64 * 1024));
        overflow_in_a_batch("small-deep");
    }
}

/// A thread whose policy pools 64 KiB stacks gives them to greenlets built
/// without a size: an overflow hits the guard page 64 KiB down and says so.
#[test]
fn an_overflow_on_a_small_pooled_stack_names_the_greenlet_and_the_size() {
    assert_overflow(
        "small_pooled_overflow_child",
        SMALL_CHILD,
        "greenlet 'small-deep' (id 4) overflowed its stack of 64 KiB; \
         raise it with Builder::stack_size",
    );
}

const TINY_CHILD: &str = "GREENLET_TINY_STACK_OVERFLOW_CHILD";

#[test]
fn tiny_stack_overflow_child() {
    if std::env::var(TINY_CHILD).is_ok() {
        let g = Greenlet::builder()
            .name("tiny")
            .stack_size(1000)
            .build(|()| recurse(0))
            .unwrap();
        let _ = g.switch::<(), u64>(());
    }
}

/// A stack asked for with fewer bytes than the minimum gets the minimum,
/// and the message names what it got, not "0 KiB".
#[test]
fn an_overflow_on_a_stack_below_the_minimum_names_the_minimum() {
    let kib = greenlet::MIN_STACK_SIZE / 1024;
    assert!(kib > 0);
    assert_overflow(
        "tiny_stack_overflow_child",
        TINY_CHILD,
        &format!(
            "greenlet 'tiny' (id 1) overflowed its stack of {kib} KiB; \
             raise it with Builder::stack_size"
        ),
    );
}

const SWITCHING_CHILD: &str = "GREENLET_SWITCHING_OVERFLOW_CHILD";

/// Recurses with frames of `PAD` bytes, switching to `parent` at every
/// level, so that the overflow lands, at some depth, inside a switch.
#[inline(never)]
fn recurse_switching<const PAD: usize>(n: u64, parent: &Greenlet) -> u64 {
    let frame = std::hint::black_box([n as u8; PAD]);
    parent.switch::<(), ()>(()).unwrap();
    if n == u64::MAX {
        return 0; // never: the stack overflows long before
    }
    recurse_switching::<PAD>(n + 1, parent) + u64::from(frame[0])
}

#[test]
fn switching_overflow_child() {
    let Ok(pad) = std::env::var(SWITCHING_CHILD) else {
        return;
    };
    let pad: usize = pad.parse().unwrap();
    let g = Greenlet::builder()
        .name("switchy")
        .stack_size(64 * 1024)
        .build(move |()| {
            let parent = Greenlet::current().parent().unwrap();
            match pad {
                0 => recurse_switching::<8>(0, &parent),
                1 => recurse_switching::<24>(0, &parent),
                2 => recurse_switching::<40>(0, &parent),
                3 => recurse_switching::<56>(0, &parent),
                4 => recurse_switching::<72>(0, &parent),
                5 => recurse_switching::<88>(0, &parent),
                6 => recurse_switching::<104>(0, &parent),
                _ => recurse_switching::<120>(0, &parent),
            }
        })
        .unwrap();
    loop {
        g.switch::<(), ()>(()).unwrap();
    }
}

/// A greenlet that switches at every level of its recursion overflows, at
/// some depth, inside the switch, where `current` already names the
/// target: the message still names the greenlet. Which depth faults
/// depends on where its stack begins, so eight frame sizes are tried,
/// twice each (one of them landing in the switch is likely, not certain:
/// a run that hits the switch on old code died of a bare SIGSEGV, about
/// one run in five; the deterministic check is the runtime's unit test
/// `an_overflow_is_found_in_the_guard_page_of_a_greenlet_that_is_not_current`).
#[test]
fn an_overflow_inside_a_switch_names_the_greenlet() {
    for run in 0..16 {
        let out = child::run(
            "switching_overflow_child",
            SWITCHING_CHILD,
            &(run % 8).to_string(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("greenlet 'switchy' (id 1) overflowed its stack of 64 KiB"),
            "run {run}: {:?}, stderr: {stderr}",
            out.status
        );
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "run {run}");
    }
}

/// A value whose destructor recurses until the stack it runs on overflows.
struct OverflowsAsItDrops;

impl Drop for OverflowsAsItDrops {
    fn drop(&mut self) {
        std::hint::black_box(recurse(0));
    }
}

const AT_EXIT_CHILD: &str = "GREENLET_OVERFLOW_AT_THREAD_EXIT_CHILD";

thread_local! {
    /// A handle whose destructor, at the thread's exit, kills its greenlet.
    static KEPT: std::cell::RefCell<Option<Greenlet>> = const { std::cell::RefCell::new(None) };
}

#[test]
fn overflow_at_thread_exit_child() {
    let Ok(mode) = std::env::var(AT_EXIT_CHILD) else {
        return;
    };
    std::thread::spawn(move || {
        if mode == "unstarted" {
            // The teardown discards it, dropping its function on its own
            // stack.
            let guard = OverflowsAsItDrops;
            let g = Greenlet::builder()
                .name("unstarted-at-exit")
                .stack_size(64 * 1024)
                .build(move |()| drop(guard))
                .unwrap();
            std::mem::forget(g);
        } else {
            // Suspended, its last handle in a thread-local: that
            // thread-local's destructor kills it.
            let g = Greenlet::builder()
                .name("kept-in-a-thread-local")
                .stack_size(64 * 1024)
                .build(|()| {
                    let _guard = OverflowsAsItDrops;
                    Greenlet::main().switch::<(), ()>(()).unwrap();
                })
                .unwrap();
            g.switch::<(), ()>(()).unwrap();
            KEPT.with(|k| *k.borrow_mut() = Some(g));
        }
    })
    .join()
    .ok();
}

/// Rust's runtime removes a thread's alternate signal stack when the
/// thread's main function returns, before the thread-locals' destructors
/// run; the runtime's teardown is one of them, and discards an unstarted
/// greenlet by dropping its function on its own stack. An overflow there
/// is reported as any other (it used to die of a bare SIGSEGV: with no
/// alternate stack, the kernel cannot run the handler).
#[test]
fn an_overflow_dropping_an_unstarted_greenlets_function_at_thread_exit_is_reported() {
    assert_overflow_in(
        "overflow_at_thread_exit_child",
        AT_EXIT_CHILD,
        "unstarted",
        "greenlet 'unstarted-at-exit' (id 1) overflowed its stack of 64 KiB",
    );
}

/// The same at a kill that a thread-local's destructor runs (a handle
/// kept in a thread-local, the crate's **Threads** docs): the victim's
/// destructors overflow its stack after Rust's runtime removed the
/// alternate signal stack.
#[test]
fn an_overflow_in_a_kill_run_by_a_thread_locals_destructor_is_reported() {
    assert_overflow_in(
        "overflow_at_thread_exit_child",
        AT_EXIT_CHILD,
        "kept",
        "greenlet 'kept-in-a-thread-local' (id 1) overflowed its stack of 64 KiB",
    );
}

const MINIMUM_CHILD: &str = "GREENLET_MINIMUM_STACK_CHILD";

/// Counts its drop.
struct Dropped(std::rc::Rc<std::cell::Cell<u32>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn minimum_stack_child() {
    let Ok(mode) = std::env::var(MINIMUM_CHILD) else {
        return;
    };
    if mode == "panic" {
        // std's panic hook prints the report, with a backtrace, on the
        // panicking greenlet's stack.
        let g = Greenlet::builder()
            .name("smallest")
            .stack_size(0)
            .build(|()| -> u8 { panic!("a plain panic") })
            .unwrap();
        let r = g.switch::<(), u8>(());
        assert!(
            matches!(r, Err(greenlet::SwitchError::Panicked(_))),
            "{r:?}"
        );
        // The same after a hub sleep: the backtrace goes on into the
        // frames of the hub's loop, which resumed the greenlet.
        greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(0));
        let h = greenlet::hub::spawn(|| {
            greenlet::hub::sleep(std::time::Duration::from_millis(1));
            panic!("a plain panic after a sleep")
        });
        assert!(h.join().is_err());
    } else {
        // A switch through a hook that does nothing, then a kill.
        let drops = std::rc::Rc::new(std::cell::Cell::new(0));
        let guard = Dropped(drops.clone());
        greenlet::set_switch_hook(Some(Box::new(|_| {})));
        let g = Greenlet::builder()
            .name("smallest")
            .stack_size(0)
            .build(move |()| {
                let _guard = guard;
                Greenlet::main().switch::<(), ()>(()).unwrap();
            })
            .unwrap();
        g.switch::<(), ()>(()).unwrap();
        g.kill();
        greenlet::set_switch_hook(None);
        assert!(g.is_dead());
        assert_eq!(drops.get(), 1);
    }
}

/// The smallest stack a greenlet can get (`stack_size(0)`, raised to
/// `MIN_STACK_SIZE`) holds the report of a panic with a backtrace, which
/// std's panic hook prints on that stack: the panic reaches the parent.
/// (On the 4 KiB of the minimum before, the report overflowed it.)
#[test]
fn a_panic_with_a_backtrace_fits_the_minimum_stack() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "minimum_stack_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MINIMUM_CHILD, "panic")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stderr.contains("a plain panic"), "{stderr}");
}

/// The minimum stack holds a switch through a switch hook and a kill's
/// unwinding, in debug builds too (whose frames are several times larger:
/// on the 4 KiB of the minimum before, a hooked switch overflowed it).
#[test]
fn a_hooked_switch_and_a_kill_fit_the_minimum_stack() {
    child::assert_passes("minimum_stack_child", MINIMUM_CHILD, "hook");
}

const SMALL_POLICY_SERVER_CHILD: &str = "GREENLET_SMALL_POLICY_SERVER_CHILD";

#[test]
fn small_policy_server_child() {
    use std::io::{Read, Write};
    if std::env::var(SMALL_POLICY_SERVER_CHILD).is_err() {
        return;
    }
    greenlet::set_stack_policy(greenlet::StackPolicy::new().stack_size(16 * 1024));
    let me: std::rc::Rc<std::cell::OnceCell<greenlet::net::ServerHandle>> = Default::default();
    let cell = me.clone();
    let server = greenlet::net::Server::bind("127.0.0.1:0", move |mut conn, _| {
        let mut buf = [0u8; 2];
        if conn.read_exact(&mut buf).is_ok() {
            let _ = conn.write_all(&buf);
            if &buf == b"st" {
                // A stop from a handler runs in a greenlet of its own.
                cell.get().unwrap().stop(std::time::Duration::ZERO);
            }
        }
    })
    .unwrap()
    .handler_stack_size(64 * 1024)
    .max_connections(2)
    .start();
    me.set(server.clone()).ok();
    let _stopper = server.stopper();
    for request in [b"hi", b"hi", b"st"] {
        let mut c = greenlet::net::TcpStream::connect(server.local_addr()).unwrap();
        c.write_all(request).unwrap();
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, request);
    }
    server.wait();
    assert!(server.is_stopped());
}

/// A thread whose stack policy is sized for its handlers (16 KiB here,
/// raised to the minimum) still runs a server: the server's own greenlets
/// (its accept loop, its stopper's listener and each stop) take the
/// default size, as the hub does. (In a debug build, on the policy's
/// stacks, the accept loop overflowed 32 KiB and a stop 64 KiB.)
#[test]
fn a_servers_own_greenlets_do_not_take_a_small_policys_stacks() {
    child::assert_passes("small_policy_server_child", SMALL_POLICY_SERVER_CHILD, "1");
}
