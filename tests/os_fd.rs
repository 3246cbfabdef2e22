//! Readiness on any file descriptor: `hub::wait_readable` /
//! `hub::wait_writable` and `net::AsyncFd`, on pipes.

#[path = "support/child.rs"]
mod child;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;
use greenlet::net::{AsyncFd, TcpListener, TcpStream};
use greenlet::{stats, Greenlet, WaitOn};

/// What greenlet `g` is blocked on, per `stats()`.
fn waiting_on(g: &Greenlet) -> Option<WaitOn> {
    stats()
        .greenlets
        .into_iter()
        .find(|info| info.id == g.id())
        .and_then(|info| info.waiting_on)
}

/// A pipe whose write end is full (non-blocking, so filling stops at
/// `WouldBlock`); returns how many bytes it holds.
fn full_pipe() -> (io::PipeReader, io::PipeWriter, usize) {
    let (reader, writer) = io::pipe().unwrap();
    let writer_fd = AsyncFd::new(writer).unwrap().into_inner(); // now O_NONBLOCK
    let chunk = [7u8; 4096];
    let mut held = 0;
    loop {
        match (&writer_fd).write(&chunk) {
            Ok(n) => held += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the pipe: {e}"),
        }
    }
    (reader, writer_fd, held)
}

#[test]
fn wait_writable_on_a_full_pipe_blocks_only_its_greenlet_until_a_read_makes_room() {
    let (mut reader, writer, held) = full_pipe();
    assert!(held > 0);
    let log = Rc::new(RefCell::new(Vec::new()));
    let w = {
        let log = log.clone();
        hub::spawn(move || {
            log.borrow_mut().push("waiting");
            hub::wait_writable(&writer, None).unwrap();
            log.borrow_mut().push("writable");
            (&writer).write(b"more").unwrap()
        })
    };
    // Others keep running while it waits.
    let other = {
        let log = log.clone();
        hub::spawn(move || {
            for _ in 0..3 {
                log.borrow_mut().push("other");
                hub::yield_now();
            }
        })
    };
    other.join().unwrap();
    assert!(!w.is_finished());
    assert!(matches!(
        waiting_on(w.greenlet()),
        Some(WaitOn::Writable { until: None, .. })
    ));
    // Drain the pipe (a blocking std read; the pipe is full, so it never
    // waits): the writer wakes.
    let mut buf = vec![0u8; held];
    reader.read_exact(&mut buf).unwrap();
    assert_eq!(w.join().unwrap(), 4);
    assert_eq!(
        *log.borrow(),
        ["waiting", "other", "other", "other", "writable"]
    );
}

#[test]
fn wait_writable_times_out_on_a_pipe_nobody_drains() {
    let (_reader, writer, _) = full_pipe();
    let err = hub::wait_writable(&writer, Some(Duration::from_millis(5))).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    // The registration is gone: waiting again works the same way.
    let err = hub::wait_writable(&writer, Some(Duration::from_millis(1))).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

#[test]
fn wait_readable_returns_at_once_when_ready_and_on_hang_up() {
    let (reader, mut writer) = io::pipe().unwrap();
    writer.write_all(b"x").unwrap();
    hub::wait_readable(&reader, None).unwrap();
    // A closed write end makes the read end "readable" (EOF).
    let (reader, writer) = io::pipe().unwrap();
    let waiter = hub::spawn(move || hub::wait_readable(&reader, None));
    hub::yield_now();
    assert!(!waiter.is_finished());
    drop(writer);
    waiter.join().unwrap().unwrap();
}

#[test]
fn a_timeout_too_long_for_an_instant_waits_without_a_deadline() {
    let (reader, mut writer) = io::pipe().unwrap();
    let reader = AsyncFd::new(reader).unwrap();
    reader.set_read_timeout(Some(Duration::MAX)).unwrap();
    let got = hub::spawn(move || {
        let mut buf = [0u8; 4];
        let n = (&reader).read(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    let (bare, mut bare_writer) = io::pipe().unwrap();
    let waited = hub::spawn(move || hub::wait_readable(&bare, Some(Duration::MAX)));
    hub::yield_now();
    assert!(!got.is_finished() && !waited.is_finished(), "both wait");
    writer.write_all(b"late").unwrap();
    bare_writer.write_all(b"x").unwrap();
    assert_eq!(got.join().unwrap(), b"late");
    waited.join().unwrap().unwrap();
}

#[test]
fn wait_readable_on_a_regular_file_returns_at_once() {
    let file = std::fs::File::open("Cargo.toml").unwrap();
    hub::wait_readable(&file, None).unwrap();
    hub::wait_writable(&file, Some(Duration::from_millis(1))).unwrap();
}

#[test]
fn waiting_on_a_socket_the_hub_already_has_works_through_a_duplicate() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = hub::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        // The socket is registered with this hub by its own type.
        hub::wait_readable(conn.as_fd(), None).unwrap();
        let mut buf = [0; 2];
        (&conn).read_exact(&mut buf).unwrap();
        buf
    });
    let mut client = TcpStream::connect(addr).unwrap();
    hub::yield_now();
    client.write_all(b"hi").unwrap();
    assert_eq!(&server.join().unwrap(), b"hi");
}

#[test]
fn async_fd_pipe_reads_block_only_the_reader() {
    let (reader, writer) = io::pipe().unwrap();
    let reader = AsyncFd::new(reader).unwrap();
    let mut writer = AsyncFd::new(writer).unwrap();
    let got = hub::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        loop {
            let n = (&reader).read(&mut buf).unwrap();
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&buf[..n]);
        }
    });
    for i in 0..5u8 {
        writer.write_all(&[i; 3]).unwrap();
        hub::yield_now(); // the reader runs, drains, and blocks again
        assert!(!got.is_finished());
    }
    drop(writer);
    assert_eq!(
        got.join().unwrap(),
        [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    );
}

#[test]
fn async_fd_read_timeout_and_refusals() {
    let (reader, _writer) = io::pipe().unwrap();
    let reader = AsyncFd::new(reader).unwrap();
    assert_eq!(
        reader
            .set_read_timeout(Some(Duration::ZERO))
            .unwrap_err()
            .kind(),
        io::ErrorKind::InvalidInput
    );
    reader
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut buf = [0u8; 4];
    let err = (&reader).read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    // A regular file cannot be registered: a clear error, no panic.
    let file = std::fs::File::open("Cargo.toml").unwrap();
    assert_eq!(
        AsyncFd::new(file).unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    // Nor can a descriptor the hub already has.
    let again = AsyncFd::new(reader.as_fd()).unwrap_err();
    assert_eq!(again.raw_os_error(), Some(libc::EEXIST));
    drop(reader);
    // Dropping deregistered it: a new wrapper of a new pipe is fine.
    let (r2, _w2) = io::pipe().unwrap();
    drop(AsyncFd::new(r2).unwrap());
}

const CHILD: &str = "GREENLET_OS_FD_CHILD";

/// In the child: no descriptor can be opened any more when the thread's
/// first wait needs the hub's reactor (an epoll and an eventfd).
#[test]
fn out_of_descriptors_child() {
    if std::env::var(CHILD).is_err() {
        return; // only when re-run by the test below
    }
    let (reader, _writer) = io::pipe().unwrap();
    // Every descriptor number below the lowest free one is taken, so a
    // limit there leaves none to open.
    let lowest_free = std::fs::File::open("/dev/null").unwrap().as_raw_fd() as libc::rlim_t;
    let cap = libc::rlimit {
        rlim_cur: lowest_free,
        rlim_max: lowest_free,
    };
    // SAFETY: setrlimit with a valid pointer, in a process of its own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &cap) }, 0);
    let e = hub::wait_readable(&reader, None).unwrap_err();
    println!("wait_readable: {:?}", e.raw_os_error());
}

#[test]
fn a_first_wait_without_descriptors_for_the_reactor_is_an_error() {
    let out = child::run("out_of_descriptors_child", CHILD, "1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("wait_readable: Some({})", libc::EMFILE)),
        "{stdout}"
    );
}

#[test]
fn an_epoll_entry_left_behind_wakes_nothing_registered_since() {
    use std::os::fd::OwnedFd;
    // Swapping the descriptor behind an `AsyncFd` (which `get_mut` says
    // not to do) while a copy of the old one lives leaves the old one's
    // entry in the epoll set for good: its events must reach nobody, not
    // the registration that took its place in the hub.
    let (old, mut old_writer) = std::io::pipe().unwrap();
    let old = OwnedFd::from(old);
    let copy = old.try_clone().unwrap();
    let (other, _other_writer) = std::io::pipe().unwrap();
    let mut swapped = AsyncFd::new(old).unwrap();
    *swapped.get_mut() = OwnedFd::from(other);
    drop(swapped);
    let (reader, mut writer) = std::io::pipe().unwrap();
    let fresh = Rc::new(AsyncFd::new(reader).unwrap());
    let f = fresh.clone();
    let waiter = hub::spawn(move || hub::wait_any(&[f.readable()], None));
    hub::yield_now();
    old_writer.write_all(b"x").unwrap();
    hub::idle();
    assert!(!waiter.is_finished(), "woken by the old pipe's entry");
    writer.write_all(b"y").unwrap();
    assert_eq!(waiter.join().unwrap(), Some(0));
    drop(copy);
}

/// Whether another process would find `fd`'s file write-locked (a forked
/// child asks `F_GETLK`, which reports only other processes' locks).
fn locked_for_others(fd: i32) -> bool {
    // SAFETY: the child makes only async-signal-safe calls, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: a zeroed `flock` is a valid value; `fcntl` fills it in.
        let code = unsafe {
            let mut lock: libc::flock = std::mem::zeroed();
            lock.l_type = libc::F_WRLCK as _;
            lock.l_whence = libc::SEEK_SET as _;
            match libc::fcntl(fd, libc::F_GETLK, &mut lock) {
                0 if lock.l_type == libc::F_UNLCK as _ => 0,
                0 => 1,
                _ => 2,
            }
        };
        // SAFETY: ends the forked child at once.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match libc::WEXITSTATUS(status) {
        0 => false,
        1 => true,
        _ => panic!("F_GETLK failed in the child"),
    }
}

#[test]
fn a_wait_on_a_descriptor_keeps_the_process_fcntl_locks_on_its_file() {
    use std::os::fd::{FromRawFd, OwnedFd};
    hub::time::pause();
    // SAFETY: plain calls; the descriptor is owned from here on.
    let master = unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt: {}", io::Error::last_os_error());
        OwnedFd::from_raw_fd(fd)
    };
    let fd = master.as_raw_fd();
    // SAFETY: a zeroed `flock` is a valid value.
    let locked = unsafe {
        let mut lock: libc::flock = std::mem::zeroed();
        lock.l_type = libc::F_WRLCK as _;
        lock.l_whence = libc::SEEK_SET as _;
        libc::fcntl(fd, libc::F_SETLK, &lock)
    };
    assert_eq!(locked, 0, "F_SETLK: {}", io::Error::last_os_error());
    assert!(locked_for_others(fd));
    let waited = hub::wait_readable(&master, Some(Duration::from_secs(1)));
    assert_eq!(waited.unwrap_err().kind(), io::ErrorKind::TimedOut);
    assert!(locked_for_others(fd), "the wait let go of the lock");
}

/// The variable that makes a re-run of this binary play a test's part.
const ALONE: &str = "GREENLET_OS_FD_ALONE";

/// Runs `body` in a re-run of this binary with `test` alone: the tests
/// that count on the kernel giving a closed descriptor's number to the
/// next file opened, which another test's thread could take first.
fn alone(test: &str, body: impl FnOnce()) {
    if std::env::var(ALONE).as_deref() == Ok(test) {
        body();
    } else {
        child::assert_passes(test, ALONE, test);
    }
}

/// An `AsFd` whose answer changes (safe code: the trait promises no
/// stable one): `first` for the first `first_for` asks, `later` after.
struct Fickle<'a> {
    first: std::os::fd::BorrowedFd<'a>,
    later: std::os::fd::BorrowedFd<'a>,
    first_for: u32,
    asked: std::cell::Cell<u32>,
}

impl AsFd for Fickle<'_> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.asked.set(self.asked.get() + 1);
        if self.asked.get() <= self.first_for {
            self.first
        } else {
            self.later
        }
    }
}

/// An `AsFd` whose answer changes (safe code: the trait promises no stable
/// one) after the `AsyncFd` registered it: the drop takes out the
/// descriptor it registered, not whatever the value names by then. (It
/// took out another socket's registration, whose reader was never woken.)
#[test]
fn dropping_an_async_fd_deregisters_the_descriptor_it_registered() {
    let (reader, writer) = greenlet::net::UnixStream::pair().unwrap();
    let (other, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(
        AsyncFd::new(Fickle {
            first: other.as_fd(),
            later: reader.as_fd(),
            first_for: 2,
            asked: std::cell::Cell::new(0),
        })
        .unwrap(),
    );
    let read = hub::spawn(move || {
        let mut byte = [0u8; 1];
        (&reader).read(&mut byte).map_err(|e| e.kind())
    });
    hub::yield_now(); // it blocks
    (&writer).write_all(b"x").unwrap();
    let got = hub::with_timeout(Duration::from_secs(5), || read.join());
    assert!(matches!(got, Ok(Ok(Ok(1)))), "{got:?}");
    // And the number it registered is free to register again.
    drop(AsyncFd::new(other.as_fd()).unwrap());
}

/// `AsyncFd::new` asks its value's `AsFd` once: the descriptor it makes
/// non-blocking is the one it registers (with a changing answer, one was
/// made non-blocking and another registered, left blocking: its reads
/// blocked the whole thread).
#[test]
fn an_async_fd_makes_non_blocking_the_descriptor_it_registers() {
    fn nonblocking(fd: &impl AsFd) -> bool {
        // SAFETY: `F_GETFL` on an open descriptor reads its flags.
        let flags = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_GETFL) };
        flags & libc::O_NONBLOCK != 0
    }
    let (a, _a_peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let (b, _b_peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = AsyncFd::new(Fickle {
        first: a.as_fd(),
        later: b.as_fd(),
        first_for: 1,
        asked: std::cell::Cell::new(0),
    })
    .unwrap();
    assert!(nonblocking(&a) && !nonblocking(&b));
    // Registered: `a`, not `b`.
    let again = AsyncFd::new(a.as_fd())
        .map(drop)
        .map_err(|e| e.raw_os_error());
    assert_eq!(again, Err(Some(libc::EEXIST)));
    drop(AsyncFd::new(b.as_fd()).unwrap());
    drop(fd);
    drop(AsyncFd::new(a.as_fd()).unwrap());
}

/// Lets the other greenlets run a few rounds; whether `h` finished.
fn finishes_soon<R: 'static>(h: &hub::JoinHandle<R>) -> bool {
    for _ in 0..8 {
        if h.is_finished() {
            return true;
        }
        hub::yield_now();
    }
    h.is_finished()
}

/// `flush` of a value that buffers nothing returns at once, as its own
/// does, whatever room its descriptor has (it waited for room).
#[test]
fn flushing_an_async_fd_that_buffers_nothing_does_not_wait_for_room() {
    let (_reader, writer, _) = full_pipe();
    let writer = AsyncFd::new(writer).unwrap();
    // The registration learns that the pipe is full.
    assert_eq!(
        hub::wait_any(&[writer.writable()], Some(Duration::ZERO)),
        None
    );
    let flush = hub::spawn(move || {
        let mut writer = writer;
        writer.flush().map_err(|e| e.kind())
    });
    assert!(finishes_soon(&flush), "the flush waits for room");
    assert_eq!(flush.join().unwrap(), Ok(()));
}

/// An `AsyncFd` whose value closed the descriptor it registered (swapped
/// through `get_mut`), once the number went to another file that another
/// `AsyncFd` registered, leaves that one's registration alone when it
/// drops. (It took that entry out of the epoll set: its reader was never
/// woken.)
#[test]
fn an_async_fd_whose_descriptor_was_swapped_leaves_the_numbers_next_owner_alone() {
    alone(
        "an_async_fd_whose_descriptor_was_swapped_leaves_the_numbers_next_owner_alone",
        swapped_pipe_then_the_numbers_next_owner,
    );
}

fn swapped_pipe_then_the_numbers_next_owner() {
    let (first, _first_writer) = io::pipe().unwrap();
    let (second, _second_writer) = io::pipe().unwrap();
    let number = first.as_raw_fd();
    let mut swapped = AsyncFd::new(std::os::fd::OwnedFd::from(first)).unwrap();
    *swapped.get_mut() = std::os::fd::OwnedFd::from(second); // `first` closes
    let (next, mut next_writer) = io::pipe().unwrap();
    assert_eq!(next.as_raw_fd(), number, "the number goes to the next file");
    let next = Rc::new(AsyncFd::new(next).unwrap());
    drop(swapped);
    let read = {
        let next = next.clone();
        hub::spawn(move || (&*next).read(&mut [0; 1]).map_err(|e| e.kind()))
    };
    hub::yield_now(); // it waits on the empty pipe
    next_writer.write_all(b"x").unwrap();
    assert!(finishes_soon(&read), "the reader was not woken");
    assert_eq!(read.join().unwrap(), Ok(1));
}

/// A read or write through `&AsyncFd` on a value that now names another
/// descriptor than the one registered is refused: it read the other one,
/// which may be blocking (the whole thread blocked) and whose readiness
/// the hub does not watch.
#[test]
fn a_read_through_an_async_fd_whose_value_names_another_descriptor_is_refused() {
    let (registered, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let (other, _other_peer) = std::os::unix::net::UnixStream::pair().unwrap();
    // Blocking: bounded, should the read reach it.
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let fd = AsyncFd::new(Fickle {
        first: registered.as_fd(),
        later: other.as_fd(),
        first_for: 1,
        asked: std::cell::Cell::new(0),
    })
    .unwrap();
    let read = (&fd).read(&mut [0; 1]).map_err(|e| e.kind());
    assert_eq!(read, Err(io::ErrorKind::InvalidInput));
    let write = (&fd).write(b"x").map_err(|e| e.kind());
    assert_eq!(write, Err(io::ErrorKind::InvalidInput));
}

/// The same with eventfds, which all share one inode: what tells the
/// number's owner is the hub's record, not the file.
#[test]
fn an_async_eventfd_whose_descriptor_was_swapped_leaves_the_numbers_next_owner_alone() {
    alone(
        "an_async_eventfd_whose_descriptor_was_swapped_leaves_the_numbers_next_owner_alone",
        swapped_eventfd_then_the_numbers_next_owner,
    );
}

fn swapped_eventfd_then_the_numbers_next_owner() {
    fn eventfd() -> std::os::fd::OwnedFd {
        // SAFETY: `eventfd` takes plain integers and returns a new
        // descriptor, which the `OwnedFd` then owns alone.
        unsafe {
            let fd = libc::eventfd(0, libc::EFD_CLOEXEC);
            assert!(fd >= 0, "eventfd: {}", io::Error::last_os_error());
            std::os::fd::FromRawFd::from_raw_fd(fd)
        }
    }
    let first = eventfd();
    let number = first.as_raw_fd();
    let mut swapped = AsyncFd::new(first).unwrap();
    *swapped.get_mut() = eventfd(); // `first` closes
    let next = eventfd();
    assert_eq!(next.as_raw_fd(), number, "the number goes to the next file");
    let next = Rc::new(AsyncFd::new(next).unwrap());
    drop(swapped);
    let read = {
        let next = next.clone();
        hub::spawn(move || (&*next).read(&mut [0; 8]).map_err(|e| e.kind()))
    };
    hub::yield_now(); // it waits on the zero counter
    (&*next).write_all(&1u64.to_ne_bytes()).unwrap();
    assert!(finishes_soon(&read), "the reader was not woken");
    assert_eq!(read.join().unwrap(), Ok(8));
}
