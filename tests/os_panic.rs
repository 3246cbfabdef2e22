//! Panics inside greenlets name the greenlet (name and id) on stderr,
//! ahead of std's report. Checked in a child process, whose stderr is
//! the subject.

use std::process::Command;

use greenlet::{hub, Greenlet};

/// The child half: panics in the way `mode` says.
#[test]
fn child_panics() {
    let Ok(mode) = std::env::var("GREENLET_TEST_PANIC") else {
        return;
    };
    match mode.as_str() {
        "named" => {
            let g = Greenlet::builder()
                .name("worker")
                .build(|()| -> () { panic!("boom in worker") })
                .unwrap();
            eprintln!("id={}", g.id());
            assert!(g.switch::<(), ()>(()).is_err());
        }
        "spawned" => {
            let h = hub::spawn(|| -> () { panic!("boom in spawned") });
            eprintln!("id={}", h.greenlet().id());
            assert!(h.join().is_err());
        }
        "main" => {
            let _ = Greenlet::new(|()| ()); // a greenlet exists on the thread
            let caught = std::panic::catch_unwind(|| panic!("boom in main"));
            assert!(caught.is_err());
        }
        "kill" => {
            let g = Greenlet::new(|()| {
                greenlet::Greenlet::main().switch::<(), ()>(()).unwrap();
            });
            g.switch::<(), ()>(()).unwrap();
            g.kill();
        }
        "first built while unwinding" => {
            // The process's first greenlet is built by a destructor while
            // the thread unwinds (the hook cannot be installed then); the
            // next build installs it.
            struct BuildsOne;
            impl Drop for BuildsOne {
                fn drop(&mut self) {
                    drop(Greenlet::new(|()| ()));
                }
            }
            let caught = std::panic::catch_unwind(|| {
                let _b = BuildsOne;
                panic!("first panic");
            });
            assert!(caught.is_err());
            let g = Greenlet::builder()
                .name("later")
                .build(|()| -> () { panic!("boom in later") })
                .unwrap();
            eprintln!("id={}", g.id());
            assert!(g.switch::<(), ()>(()).is_err());
        }
        "broken-stderr" => {
            // Stderr becomes a pipe whose reader is gone (a log collector
            // that died): every write to it fails with `EPIPE`.
            let (r, w) = std::io::pipe().unwrap();
            drop(r);
            // SAFETY: plain descriptor calls on a descriptor this process
            // owns; stderr is replaced, nothing else changes.
            assert_eq!(
                unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&w), 2) },
                2
            );
            let h = hub::Builder::new()
                .name("worker")
                .spawn(|| -> () { panic!("boom with nobody reading") })
                .unwrap();
            assert!(matches!(h.join(), Err(hub::JoinError::Panicked(_))));
            let g = Greenlet::new(|()| -> () { panic!("boom again") });
            assert!(g.switch::<(), ()>(()).is_err());
        }
        other => panic!("unknown mode {other}"),
    }
}

fn run(mode: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_panics", "--nocapture", "--test-threads=1"])
        .env("GREENLET_TEST_PANIC", mode)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// The id the child printed.
fn id(stderr: &str) -> &str {
    let line = stderr.lines().find(|l| l.starts_with("id=")).unwrap();
    &line[3..]
}

#[test]
fn a_named_greenlets_panic_names_it_before_stds_report() {
    let stderr = run("named");
    let expected = format!("panic in greenlet 'worker' (id {}):", id(&stderr));
    let at = stderr.find(&expected).unwrap_or_else(|| panic!("{stderr}"));
    let std_report = stderr.find("panicked at").unwrap();
    assert!(at < std_report, "{stderr}");
    assert!(stderr.contains("boom in worker"));
}

#[test]
fn a_spawned_greenlets_panic_gives_its_id() {
    let stderr = run("spawned");
    let expected = format!("panic in greenlet id {}:", id(&stderr));
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("boom in spawned"));
}

#[test]
fn main_and_kills_add_nothing() {
    let stderr = run("main");
    assert!(stderr.contains("boom in main"));
    assert!(!stderr.contains("panic in greenlet"), "{stderr}");
    let stderr = run("kill");
    assert!(!stderr.contains("panic"), "{stderr}");
}

#[test]
fn the_hook_is_installed_by_a_later_build_if_the_first_came_while_unwinding() {
    let stderr = run("first built while unwinding");
    let expected = format!("panic in greenlet 'later' (id {}):", id(&stderr));
    assert!(stderr.contains(&expected), "{stderr}");
}

/// A greenlet's panic while stderr fails (a pipe whose reader is gone) is
/// delivered as ever: the line naming the greenlet is dropped, not a
/// panic inside the panic hook, which aborts the process.
#[test]
fn a_panic_while_stderr_fails_is_delivered_not_an_abort() {
    run("broken-stderr");
}
