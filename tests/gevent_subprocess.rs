//! Scenarios ported from gevent's `src/gevent/tests/test__subprocess.py`
//! (TestPopen, RunFuncTestCase) with `process::Command`/`Child`, each test
//! named after the one it ports; `sh -c` stands in for `python -c`. Not
//! ported here: the cases that measure a timeout on the real clock
//! (`test_timeout`, `test_check_output_timeout`,
//! `test_run_with_shell_timeout_and_capture_output`; `os_process.rs`
//! covers `with_timeout` around `output`).

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use greenlet::hub;
use greenlet::process::{Command, Stdio};

fn sh(code: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(code);
    c
}

// TestPopen.test_exit
#[test]
fn test_exit() {
    let mut p = sh("exit 10").spawn().unwrap();
    assert_eq!(p.wait().unwrap().code(), Some(10));
}

// TestPopen.test_wait: gevent.wait([popen]) then poll(), with the
// child's `exited()` (where the system gives no pidfd, `wait`).
#[test]
fn test_wait() {
    let mut p = sh("exit 11").spawn().unwrap();
    match p.exited() {
        Some(exited) => {
            let ready = hub::wait(&[&exited], None, Some(Duration::from_secs(10)));
            assert_eq!(ready, [0]);
            assert_eq!(p.try_wait().unwrap().and_then(|s| s.code()), Some(11));
        }
        None => assert_eq!(p.wait().unwrap().code(), Some(11)),
    }
}

// TestPopen.test_child_exception
#[test]
fn test_child_exception() {
    let e = Command::new("*").spawn().map(|_| ()).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(2));
}

/// `code` under `sh -c` with all three pipes, fed `input` by
/// `communicate`.
fn communicate(code: &str, input: Vec<u8>) -> std::process::Output {
    sh(code)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .communicate(input)
        .unwrap()
}

// TestPopen.test_communicate: stdin b"banana" echoed to stdout, stderr
// "pineapple".
#[test]
fn test_communicate() {
    let out = communicate("printf pineapple >&2; cat", b"banana".to_vec());
    assert_eq!(out.stdout, b"banana");
    assert_eq!(out.stderr, b"pineapple");
}

// Same with more input than a pipe holds: the write and the reads must
// proceed concurrently (communicate's point).
#[test]
fn test_communicate_large() {
    let data = vec![b'x'; 1 << 20];
    let out = communicate("cat", data.clone());
    assert_eq!(out.stdout.len(), data.len());
}

// TestPopen.test_nonblock_removed: a pipe handed to a child as stdin must
// be blocking for it (the parent's end is non-blocking, and the flag
// belongs to the open file, which the child shares); grep keeps running, waiting for input.
#[test]
fn test_nonblock_removed() {
    let mut producer = sh("sleep 5").stdout(Stdio::piped()).spawn().unwrap();
    let out = producer.stdout.take().unwrap();
    grep_blocks_on(out, producer);
}

/// `grep` reading `out` (the producer's stdout, which must be blocking
/// again in the child) still runs 200 ms later: it waits for input
/// instead of failing on `EAGAIN`. Then both are killed and reaped.
fn grep_blocks_on(out: greenlet::process::ChildStdout, mut producer: greenlet::process::Child) {
    let mut p = Command::new("grep")
        .arg("text")
        .stdin(Stdio::try_from(out).unwrap())
        .spawn()
        .unwrap();
    let r = p.wait_timeout(Duration::from_millis(200)).unwrap();
    assert_eq!(r, None, "grep should still be running");
    p.kill().unwrap();
    p.wait().unwrap();
    producer.kill().unwrap();
    producer.wait().unwrap();
}

// Same, with the parent's own async pipe: gevent's FileObject(r).
#[test]
fn test_nonblock_removed_child_stdout_read_by_us_then_given() {
    // A child stdout that we read from first (registered with the hub),
    // then give away.
    let mut producer = sh("printf a; sleep 5")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = producer.stdout.take().unwrap();
    let mut b = [0u8; 1];
    out.read_exact(&mut b).unwrap();
    grep_blocks_on(out, producer);
}

// TestPopen.test_issue148
#[test]
fn test_issue148() {
    for _ in 0..7 {
        let e = Command::new("this_name_must_not_exist")
            .spawn()
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc_enoent()));
    }
}

fn libc_enoent() -> i32 {
    2
}

// TestPopen.test_check_output_keyword_error (no check_output: the status)
#[test]
fn test_check_output_keyword_error() {
    let out = sh("exit 44").output().unwrap();
    assert_eq!(out.status.code(), Some(44));
}

// TestPopen.test_subprocess_in_native_thread: gevent refuses (child
// watchers only on the default loop); here any thread has its own hub.
#[test]
fn test_subprocess_in_native_thread() {
    let out = std::thread::spawn(|| sh("echo 123").output().unwrap().stdout)
        .join()
        .unwrap();
    assert_eq!(out, b"123\n");
}

// TestPopen.__test_no_output: stdout piped, no output -> empty.
#[test]
fn test_default_mode_no_output() {
    let out = Command::new("true").output().unwrap();
    assert!(out.stdout.is_empty());
}

// RunFuncTestCase.test_returncode / test_check / test_check_zero
#[test]
fn test_returncode() {
    assert_eq!(sh("exit 47").status().unwrap().code(), Some(47));
    assert_eq!(sh("exit 0").status().unwrap().code(), Some(0));
}

// RunFuncTestCase.test_capture_stdout / test_capture_stderr
#[test]
fn test_capture() {
    let out = sh("echo BDFL; echo BDFL2 >&2").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("BDFL"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("BDFL2"));
}

// RunFuncTestCase.test_check_output_stdin_arg: stdin from a file.
#[test]
fn test_check_output_stdin_arg() {
    let path = std::env::temp_dir().join(format!("review58-pear-{}", std::process::id()));
    std::fs::write(&path, b"pear").unwrap();
    let f = std::fs::File::open(&path).unwrap();
    let out = Command::new("tr")
        .args(["a-z", "A-Z"])
        .stdin(f)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(out.stdout, b"PEAR");
}

// RunFuncTestCase.test_run_kwargs
#[test]
fn test_run_kwargs() {
    let s = sh(r#"[ "$FRUIT" = banana ] && exit 33 || exit 31"#)
        .env("FRUIT", "banana")
        .status()
        .unwrap();
    assert_eq!(s.code(), Some(33));
}

// Killing a child another greenlet waits on, via the signaller.
#[test]
fn test_signaller_kill_while_waited() {
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let Ok(s) = child.signaller() else {
        // No pidfd on this system (or under valgrind): nothing to test.
        child.kill().unwrap();
        child.wait().unwrap();
        return;
    };
    let killer = hub::spawn(move || s.kill());
    let status = child.wait().unwrap();
    killer.join().unwrap().unwrap();
    assert_eq!(status.signal(), Some(9));
}
