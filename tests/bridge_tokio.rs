//! tokio's futures awaited by greenlets, with a multi-thread runtime
//! running in the background: timers, oneshots from other threads, TCP in
//! both directions, and the message of a future polled outside a runtime.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use greenlet::hub;
use greenlet::net::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A panic's message, whether raised with a literal or a formatted one.
#[cfg(feature = "tokio")]
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn ten_thousand_greenlets_await_a_sleep_and_a_oneshot() {
    const N: usize = 10_000;
    let rt = runtime();
    // The thread's context, for the whole test (the main greenlet holds it).
    let _context = rt.enter();
    let done = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let mut senders = Vec::with_capacity(N);
    for i in 0..N {
        let (tx, rx) = tokio::sync::oneshot::channel::<usize>();
        senders.push(tx);
        let done = done.clone();
        hub::spawn(move || {
            hub::block_on(tokio::time::sleep(Duration::from_millis(1)));
            let v = hub::block_on(rx).unwrap();
            assert_eq!(v, i * 3);
            done.set(done.get() + 1);
        });
    }
    // Four OS threads answer the oneshots.
    let sent = Arc::new(AtomicUsize::new(0));
    let mut chunks: Vec<Vec<_>> = (0..4).map(|_| Vec::new()).collect();
    for (i, tx) in senders.into_iter().enumerate() {
        chunks[i % 4].push((i, tx));
    }
    let threads: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let sent = sent.clone();
            std::thread::spawn(move || {
                for (i, tx) in chunk {
                    tx.send(i * 3).unwrap();
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    hub::run();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(sent.load(Ordering::Relaxed), N);
    assert_eq!(done.get(), N);
}

/// A greenlet echo server on this thread's hub; returns its address.
fn greenlet_echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    hub::spawn_daemon(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            hub::spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    let n = stream.read(&mut buf).unwrap();
                    if n == 0 {
                        return;
                    }
                    stream.write_all(&buf[..n]).unwrap();
                }
            });
        }
    });
    addr
}

#[test]
fn greenlets_talk_to_the_crate_echo_server_through_tokio_sockets() {
    let rt = runtime();
    let _context = rt.enter();
    let addr = greenlet_echo_server();
    let clients: Vec<_> = (0..8)
        .map(|c| {
            hub::spawn(move || {
                hub::block_on(async move {
                    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                    let mut got = Vec::new();
                    for i in 0..10u8 {
                        let msg = [c, i, b'!'];
                        s.write_all(&msg).await.unwrap();
                        let mut back = [0u8; 3];
                        s.read_exact(&mut back).await.unwrap();
                        got.push(back);
                    }
                    got
                })
            })
        })
        .collect();
    for (c, h) in clients.into_iter().enumerate() {
        let got = h.join().unwrap();
        let want: Vec<_> = (0..10u8).map(|i| [c as u8, i, b'!']).collect();
        assert_eq!(got, want);
    }
}

#[test]
fn greenlet_clients_talk_to_a_tokio_echo_server() {
    let rt = runtime();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    s.write_all(&buf[..n]).await.unwrap();
                }
            });
        }
    });
    let clients: Vec<_> = (0..8u8)
        .map(|c| {
            hub::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let mut got = Vec::new();
                for i in 0..10u8 {
                    s.write_all(&[c, i]).unwrap();
                    let mut back = [0u8; 2];
                    s.read_exact(&mut back).unwrap();
                    got.push(back);
                }
                got
            })
        })
        .collect();
    for (c, h) in clients.into_iter().enumerate() {
        let want: Vec<_> = (0..10u8).map(|i| [c as u8, i]).collect();
        assert_eq!(h.join().unwrap(), want);
    }
}

#[test]
fn a_tokio_future_without_a_runtime_names_the_remedy() {
    let h =
        hub::spawn(|| hub::block_on(async { tokio::time::sleep(Duration::from_millis(1)).await }));
    let message = match h.join() {
        Err(hub::JoinError::Panicked(p)) => p.downcast_ref::<String>().cloned().unwrap_or_default(),
        other => panic!("unexpected {other:?}"),
    };
    assert!(message.contains("outside a tokio runtime"), "{message}");
    assert!(message.contains("handle().enter()"), "{message}");
}

#[cfg(feature = "tokio")]
#[test]
fn set_tokio_handle_enters_the_runtime_around_polls() {
    let rt = runtime();
    assert!(hub::set_tokio_handle(Some(rt.handle().clone())).is_none());
    let hs: Vec<_> = (0..100u64)
        .map(|i| {
            hub::spawn_local(async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::spawn(async move { tx.send(i + 1).unwrap() });
                rx.await.unwrap()
            })
        })
        .collect();
    let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, (1..=100).sum());
    assert!(hub::set_tokio_handle(None).is_some());
}

/// A future whose destructor needs the runtime's context, as a pooled
/// connection spawns a task to give itself back.
#[cfg(feature = "tokio")]
struct SpawnsOnDrop(Arc<AtomicUsize>);

#[cfg(feature = "tokio")]
impl std::future::Future for SpawnsOnDrop {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

#[cfg(feature = "tokio")]
impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        let given_back = self.0.clone();
        tokio::spawn(async move {
            given_back.fetch_add(1, Ordering::SeqCst);
        });
    }
}

/// Waits on `rt` for the tasks of two `SpawnsOnDrop` destructors. Dropped
/// outside the context, each panicked instead and nothing would ever
/// count: a minute without both is a failure, not a hang.
#[cfg(feature = "tokio")]
fn assert_both_destructors_spawned_their_task(rt: &tokio::runtime::Runtime, ran: &AtomicUsize) {
    let counted = rt.block_on(async {
        let both = async {
            while ran.load(Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), both).await
    });
    assert!(
        counted.is_ok(),
        "{} of 2 tasks ran",
        ran.load(Ordering::SeqCst)
    );
}

#[cfg(feature = "tokio")]
#[test]
fn a_cancelled_block_on_drops_its_future_inside_the_runtime_context() {
    // Killed or timed out, the waiting greenlet unwinds and drops the
    // future; outside the context its `tokio::spawn` panicked there, which
    // aborted the process.
    let rt = runtime();
    hub::set_tokio_handle(Some(rt.handle().clone()));
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let waiter = hub::spawn(move || hub::block_on(SpawnsOnDrop(d)));
    hub::yield_now(); // it waits
    waiter.kill();
    let d = dropped.clone();
    let timed = hub::with_timeout(Duration::from_millis(1), move || {
        hub::block_on(SpawnsOnDrop(d))
    });
    assert!(timed.is_err());
    hub::set_tokio_handle(None);
    // Both tasks were spawned; wait for them on the runtime.
    assert_both_destructors_spawned_their_task(&rt, &dropped);
}

#[cfg(feature = "tokio")]
#[test]
fn a_thread_exiting_with_a_block_on_pending_leaves_it_without_aborting() {
    // The thread's handle is set before tokio's own thread-local is first
    // used (by the poll), so tokio's is torn down first at thread exit.
    // The blocked greenlet used to be killed after that, its future
    // dropped in the gone context (which panicked, and aborted); a
    // thread's exit now leaves a started greenlet suspended (the crate's
    // **Threads** rule): its future and guard are never dropped, and
    // nothing aborts.
    let rt = runtime();
    let handle = rt.handle().clone();
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    std::thread::spawn(move || {
        hub::set_tokio_handle(Some(handle));
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let guard = Counted(d);
        let _waiter = hub::spawn(move || {
            let _guard = guard;
            hub::block_on(std::future::pending::<()>())
        });
        hub::yield_now(); // it polls once, and waits
    })
    .join()
    .unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
}

#[cfg(feature = "tokio")]
#[test]
fn set_tokio_handle_from_a_destructor_at_thread_exit_does_not_panic() {
    // A guard restoring the previous handle, dropped at thread exit after
    // the handle's cell is gone (with the function of a greenlet never
    // started, which the exit discards): `set_tokio_handle` panicked there
    // (which aborted when it was a kill's unwinding).
    static RESTORED: AtomicUsize = AtomicUsize::new(0);
    struct Restore(Option<tokio::runtime::Handle>);
    impl Drop for Restore {
        fn drop(&mut self) {
            hub::set_tokio_handle(self.0.take());
            RESTORED.fetch_add(1, Ordering::SeqCst);
        }
    }
    let rt = runtime();
    let h = rt.handle().clone();
    std::thread::spawn(move || {
        let _ = greenlet::Greenlet::current(); // the runtime first
        let restore = Restore(hub::set_tokio_handle(Some(h)));
        let g = greenlet::Greenlet::new(move |()| drop(restore));
        std::mem::forget(g); // unstarted: its function dropped at thread exit
    })
    .join()
    .unwrap();
    assert_eq!(RESTORED.load(Ordering::SeqCst), 1);
}

/// A `block_on` nested in the poll of a future polled inside the tokio
/// context (a handle set) that has to wait is refused with a message
/// saying what to do: it would block its greenlet with the context
/// entered. (Two greenlets doing it left tokio's context stack out of
/// order: tokio panicked, "`EnterGuard` values dropped out of order", in
/// whichever resumed first.) A nested `block_on` whose future is ready
/// does not block, and is fine.
#[cfg(feature = "tokio")]
#[test]
fn a_nested_block_on_that_would_wait_inside_the_tokio_context_is_refused() {
    let rt = runtime();
    hub::set_tokio_handle(Some(rt.handle().clone()));
    let ready = hub::block_on(async { hub::block_on(async { 5 }) });
    assert_eq!(ready, 5);
    let (tx1, rx1) = tokio::sync::oneshot::channel::<u32>();
    let (tx2, rx2) = tokio::sync::oneshot::channel::<u32>();
    let a = hub::spawn(move || hub::block_on(async move { hub::block_on(rx1).unwrap() }));
    let b = hub::spawn(move || hub::block_on(async move { hub::block_on(rx2).unwrap() }));
    hub::yield_now(); // both refused already: the receivers are gone
    assert!(tx1.send(1).is_err() && tx2.send(2).is_err());
    for joined in [a.join(), b.join()] {
        match joined {
            Err(hub::JoinError::Panicked(p)) => {
                let message = panic_message(p.as_ref());
                assert!(message.contains(".await the inner future"), "{message}");
            }
            other => panic!("not refused: {other:?}"),
        }
    }
    // The context is in order: a plain block_on works.
    let timer = hub::block_on(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        7
    });
    assert_eq!(timer, 7);
    hub::set_tokio_handle(None);
}

/// Nested `block_on`s of ready futures, many of them, in two greenlets at
/// once, beside a plain `block_on` in a third: the nested ones never
/// switch (their budget yield would leave the context entered), so no
/// greenlet is ever parked inside an entered poll, and the plain one is
/// not refused. (The nested ones yielded every 128 calls, which brought
/// tokio's "`EnterGuard` values dropped out of order" back, and the plain
/// one was refused as if nested.)
#[cfg(feature = "tokio")]
#[test]
fn nested_ready_block_ons_never_switch_and_leave_the_others_alone() {
    let rt = runtime();
    hub::set_tokio_handle(Some(rt.handle().clone()));
    let nested = || {
        hub::spawn(|| {
            hub::block_on(async {
                let mut sum = 0u64;
                for i in 0..1000u64 {
                    sum += hub::block_on(async move { i });
                }
                sum
            })
        })
    };
    let (a, b) = (nested(), nested());
    let plain = hub::spawn(|| {
        hub::block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            "slept"
        })
    });
    assert_eq!(a.join().unwrap(), 499_500);
    assert_eq!(b.join().unwrap(), 499_500);
    assert_eq!(plain.join().unwrap(), "slept");
    hub::set_tokio_handle(None);
}

/// Ready at once; its destructor waits with a `block_on`.
#[cfg(feature = "tokio")]
struct DropWaits(Option<tokio::sync::oneshot::Receiver<u32>>);

#[cfg(feature = "tokio")]
impl std::future::Future for DropWaits {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Ready(())
    }
}

#[cfg(feature = "tokio")]
impl Drop for DropWaits {
    fn drop(&mut self) {
        if let Some(rx) = self.0.take() {
            let _ = hub::block_on(rx);
        }
    }
}

/// `block_on` drops its future inside the tokio context: a destructor
/// that waits there is refused as a nested wait is. (It waited with the
/// context entered, and two greenlets doing so left it out of order.)
#[cfg(feature = "tokio")]
#[test]
fn a_block_on_that_would_wait_in_the_drop_of_a_future_is_refused() {
    let rt = runtime();
    hub::set_tokio_handle(Some(rt.handle().clone()));
    let (_tx, rx) = tokio::sync::oneshot::channel::<u32>();
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        hub::block_on(DropWaits(Some(rx)));
    }))
    .unwrap_err();
    let message = panic_message(refused.as_ref());
    assert!(message.contains(".await the inner future"), "{message}");
    // The count is back: a plain block_on waits as usual.
    hub::block_on(async { tokio::time::sleep(Duration::from_millis(1)).await });
    hub::set_tokio_handle(None);
}

/// Inside an entered poll nothing may switch away to the hub: a
/// generator's producer (another greenlet, resumed by the consumer's
/// poll) is refused a wait as the consumer would be, and the budget's
/// yield of an operation that completes (an unbounded put) is skipped.
/// (The producer waited with the consumer's context entered, and the
/// budget yielded there: with two greenlets, tokio's context stack went
/// out of order.)
#[cfg(feature = "tokio")]
#[test]
fn nothing_inside_an_entered_poll_switches_to_the_hub() {
    use greenlet::{Generator, Yielder};
    let rt = runtime();
    hub::set_tokio_handle(Some(rt.handle().clone()));
    let (_tx, rx) = tokio::sync::oneshot::channel::<u32>();
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        hub::block_on(async move {
            let mut producer = Generator::new(move |y: &Yielder<u32>| {
                y.yield_(hub::block_on(rx).unwrap());
            });
            producer.next()
        })
    }));
    assert!(refused.is_err(), "the producer's wait was refused");
    let puts = |n: u32| {
        hub::spawn(move || {
            hub::block_on(async move {
                let q = hub::Queue::new();
                for i in 0..n {
                    q.put(i); // past the budget: no yield here
                }
                q.len()
            })
        })
    };
    let (a, b) = (puts(400), puts(400));
    assert_eq!((a.join().unwrap(), b.join().unwrap()), (400, 400));
    hub::set_tokio_handle(None);
}

/// A `spawn_local` future dropped before its greenlet ever ran (killed at
/// once, or by the kills that end `run_main`) drops inside the runtime's
/// context too, as one that started does.
#[cfg(feature = "tokio")]
#[test]
fn an_unstarted_spawn_local_drops_its_future_inside_the_runtime_context() {
    let rt = runtime();
    hub::set_tokio_handle(Some(rt.handle().clone()));
    let dropped = Arc::new(AtomicUsize::new(0));
    let cancelled = hub::spawn_local(SpawnsOnDrop(dropped.clone()));
    cancelled.kill(); // before it ever ran
    assert!(cancelled.join().is_err());
    hub::run_main(|| drop(hub::spawn_local(SpawnsOnDrop(dropped.clone()))));
    hub::set_tokio_handle(None);
    assert_both_destructors_spawned_their_task(&rt, &dropped);
}

/// A `block_on` nested in another's poll gives the "no runtime" message
/// once, not the inner one's quoted inside the outer one's.
#[test]
fn a_nested_tokio_future_without_a_runtime_names_the_remedy_once() {
    let h = hub::spawn(|| {
        hub::block_on(async {
            hub::block_on(async { tokio::time::sleep(Duration::from_millis(1)).await })
        })
    });
    let message = match h.join() {
        Err(hub::JoinError::Panicked(p)) => p.downcast_ref::<String>().cloned().unwrap_or_default(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(message.matches("Remedy:").count(), 1, "{message}");
}
