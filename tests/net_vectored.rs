//! Vectored reads and writes (`readv(2)` / `writev(2)`), as std's sockets
//! do them: one call moves every buffer that fits, in order. With the
//! trait's default, a `write_vectored` sent only the first non-empty
//! buffer, so a caller that writes once and gives up on the rest (rustls's
//! last alert after a failed handshake) lost the tail.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};

use greenlet::hub;
use greenlet::net::{AsyncFd, TcpListener, TcpStream, UnixStream};

const PIECES: [&[u8]; 4] = [b"one ", b"", b"two ", b"three"];

fn slices() -> Vec<IoSlice<'static>> {
    PIECES.iter().map(|p| IoSlice::new(p)).collect()
}

/// Reads into a 3-byte and a 16-byte buffer at once; what each holds.
fn read_split(mut from: impl Read) -> (usize, Vec<u8>, Vec<u8>) {
    let (mut a, mut b) = ([0u8; 3], [0u8; 16]);
    let n = from
        .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
        .unwrap();
    let second = n.saturating_sub(3);
    (n, a[..n.min(3)].to_vec(), b[..second].to_vec())
}

#[test]
fn a_tcp_vectored_write_sends_every_buffer_and_a_read_fills_them_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = hub::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        // Blocks this greenlet until the bytes are there.
        read_split(&conn)
    });
    let mut conn = TcpStream::connect(addr).unwrap();
    assert_eq!(conn.write_vectored(&slices()).unwrap(), 13);
    let (n, a, b) = reader.join().unwrap();
    assert_eq!((n, &a[..], &b[..]), (13, &b"one"[..], &b" two three"[..]));
}

#[test]
fn a_unix_vectored_write_and_read_move_every_buffer() {
    let (mut a, b) = UnixStream::pair().unwrap();
    assert_eq!(a.write_vectored(&slices()).unwrap(), 13);
    let (n, first, rest) = read_split(&b);
    assert_eq!(
        (n, &first[..], &rest[..]),
        (13, &b"one"[..], &b" two three"[..])
    );
}

#[test]
fn an_async_fd_writes_and_reads_vectored_owned_and_shared() {
    let (reader, writer) = io::pipe().unwrap();
    let (reader, mut writer) = (AsyncFd::new(reader).unwrap(), AsyncFd::new(writer).unwrap());
    // Through the owned value (the pipe's own `write_vectored`)...
    assert_eq!(writer.write_vectored(&slices()).unwrap(), 13);
    // ...and through a shared reference (`writev` on the descriptor).
    assert_eq!((&writer).write_vectored(&slices()).unwrap(), 13);
    let (n, first, rest) = read_split(&reader);
    assert_eq!(
        (n, &first[..], &rest[..]),
        (19, &b"one"[..], &b" two threeone tw"[..])
    );
    let mut tail = Vec::new();
    drop(writer);
    (&reader).read_to_end(&mut tail).unwrap();
    assert_eq!(tail, b"o three");
}

#[test]
fn a_vectored_read_of_the_owned_async_fd_uses_the_inner_reader() {
    let (reader, writer) = io::pipe().unwrap();
    let mut reader = AsyncFd::new(reader).unwrap();
    let writer = AsyncFd::new(writer).unwrap();
    let feeder = hub::spawn(move || {
        (&writer).write_all(b"abcdef").unwrap();
    });
    let (mut a, mut b) = ([0u8; 2], [0u8; 8]);
    // Blocks main until the feeder has written.
    let n = reader
        .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
        .unwrap();
    assert_eq!((n, &a[..], &b[..4]), (6, &b"ab"[..], &b"cdef"[..]));
    feeder.join().unwrap();
}

#[test]
fn more_buffers_than_one_writev_takes_go_over_several_calls() {
    let (reader, writer) = io::pipe().unwrap();
    let (reader, writer) = (AsyncFd::new(reader).unwrap(), AsyncFd::new(writer).unwrap());
    let bytes: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let collector = hub::spawn(move || {
        let mut got = Vec::new();
        (&reader).read_to_end(&mut got).unwrap();
        got
    });
    // 3,000 one-byte buffers: one `writev` takes at most 1,024 of them
    // (more would be `EINVAL`).
    let mut bufs: Vec<IoSlice<'_>> = bytes.chunks(1).map(IoSlice::new).collect();
    let mut rest = &mut bufs[..];
    let mut calls = Vec::new();
    while !rest.is_empty() {
        let n = (&writer).write_vectored(rest).unwrap();
        calls.push(n);
        IoSlice::advance_slices(&mut rest, n);
    }
    assert_eq!(calls, [1024, 1024, 952]);
    drop(writer);
    assert_eq!(collector.join().unwrap(), bytes);
}

#[test]
fn a_tcp_read_over_more_buffers_than_one_readv_takes_does_not_hide_the_rest() {
    hub::time::pause();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let server = std::rc::Rc::new(server);
    // A read blocks first, so the hub has seen the socket's readiness
    // event: the data left after the vectored read gets no new one.
    let first = {
        let server = server.clone();
        hub::spawn(move || (&*server).read(&mut [0u8; 1]).unwrap())
    };
    hub::yield_now();
    client.write_all(&[7u8; 4097]).unwrap();
    assert_eq!(first.join().unwrap(), 1);
    // 2,048 one-byte buffers: one `readv` fills 1,024 of them. That is a
    // full read, not a short one that would mean the socket is drained.
    let mut store = vec![[0u8; 1]; 2048];
    let mut bufs: Vec<IoSliceMut<'_>> = store.iter_mut().map(|b| IoSliceMut::new(b)).collect();
    assert_eq!((&*server).read_vectored(&mut bufs).unwrap(), 1024);
    server
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut rest = [0u8; 4096];
    assert_eq!((&*server).read(&mut rest).unwrap(), 3072);
}

/// A vectored write to a socket whose peer is gone fails with
/// `BrokenPipe` and raises no `SIGPIPE`, as `write` does: std's
/// `write_vectored` (a `writev`) raises it, and a process that restored
/// the signal's default action died of it. Blocked on this thread, a
/// raised `SIGPIPE` stays pending there, to be seen.
#[test]
fn a_vectored_write_to_a_gone_peer_raises_no_sigpipe() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    // SAFETY: signal sets on this stack, valid for the calls; the mask
    // is this thread's own and put back below.
    let (result, raised) = unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let result = (&a).write_vectored(&slices());
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        let raised = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        if raised {
            // Taken off again, so that unblocking does not deliver it.
            let now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        (result, raised)
    };
    assert_eq!(result.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    assert!(!raised, "the vectored write raised SIGPIPE");
}
