//! A cross-thread channel's `Receiver` and a `hub::Signal` in
//! `hub::wait_any`: ready while a receive would return at once, so a
//! greenlet waits for another thread's message, or a signal, and
//! something else at once.

use std::time::Duration;

use greenlet::hub::{self, Event, Waitable};

#[test]
fn a_send_from_another_thread_wakes_a_greenlet_waiting_on_a_receiver_and_an_event() {
    let (tx, rx) = hub::channel::<u32>();
    let stop = Event::new();
    let worker = std::thread::spawn(move || tx.send(42).unwrap());
    let items: [&dyn Waitable; 2] = [&stop, &rx];
    assert_eq!(hub::wait_any(&items, None), Some(1));
    assert_eq!(rx.try_recv(), Ok(42));
    worker.join().unwrap();
}

#[test]
fn a_receiver_holding_a_value_or_with_every_sender_gone_is_ready_at_once() {
    let (tx, rx) = hub::channel::<u32>();
    tx.send(1).unwrap();
    assert_eq!(hub::wait_any(&[&rx], None), Some(0));
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(hub::wait_any(&[&rx], Some(Duration::ZERO)), None);
    drop(tx);
    assert_eq!(hub::wait_any(&[&rx], None), Some(0));
    assert!(rx.recv().is_err());
}

#[test]
fn the_last_sender_dropped_on_another_thread_wakes_a_watcher() {
    let (tx, rx) = hub::channel::<u32>();
    let dropper = std::thread::spawn(move || drop(tx));
    assert_eq!(hub::wait_any(&[&rx], None), Some(0));
    assert!(rx.try_recv().is_err());
    dropper.join().unwrap();
}

#[test]
fn a_watcher_woken_by_a_send_passes_the_wake_up_to_a_waiting_receiver() {
    let (tx, rx) = hub::channel::<u32>();
    let rx = std::rc::Rc::new(rx);
    let stop = Event::new();
    // Listed first, so the send wakes it; it then takes nothing.
    let watcher = {
        let (rx, stop) = (rx.clone(), stop.clone());
        hub::spawn(move || {
            let items: [&dyn Waitable; 1] = [&*rx];
            let woke = hub::wait_any(&items, None);
            stop.wait(); // does not receive
            woke
        })
    };
    let receiver = {
        let rx = rx.clone();
        hub::spawn(move || rx.recv().unwrap())
    };
    hub::yield_now(); // both wait: the watcher first
    tx.send(7).unwrap();
    // Without the pass-on, the receiver would sleep with the value there.
    assert_eq!(receiver.join().unwrap(), 7);
    stop.set();
    assert_eq!(watcher.join().unwrap(), Some(0));
}

#[test]
fn a_timed_out_watcher_leaves_nothing_behind() {
    hub::time::pause();
    let (tx, rx) = hub::channel::<u32>();
    assert_eq!(hub::wait_any(&[&rx], Some(Duration::from_secs(30))), None);
    // A later send reaches a receiver as usual.
    let receiver = hub::spawn(move || rx.recv().unwrap());
    hub::yield_now();
    tx.send(3).unwrap();
    assert_eq!(receiver.join().unwrap(), 3);
}

#[test]
fn a_signal_and_a_stop_event_in_one_wait() {
    let sig = hub::signal(libc::SIGUSR2).unwrap();
    let stop = Event::new();
    let items: [&dyn Waitable; 2] = [&stop, &sig];
    // Nothing pending yet.
    assert_eq!(hub::wait_any(&items, Some(Duration::ZERO)), None);
    // SAFETY: raising a signal whose disposition `hub::signal` set is
    // sound: its handler only counts and forwards.
    assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
    assert_eq!(hub::wait_any(&items, None), Some(1));
    assert!(sig.try_recv());
    // A stop comes first now.
    stop.set();
    assert_eq!(hub::wait_any(&items, None), Some(0));
    assert!(!sig.try_recv());
}

/// Sends `value` from another thread and waits until it is in.
fn send_from_a_thread(tx: &hub::Sender<u32>, value: u32) {
    let tx = tx.clone();
    std::thread::spawn(move || tx.send(value).unwrap())
        .join()
        .unwrap();
}

/// A receiver greenlet waits and a send from another thread wakes it: a
/// notification stamps the channel, and the value is taken.
fn a_receiver_woken_by_a_send(tx: &hub::Sender<u32>, rx: &std::rc::Rc<hub::Receiver<u32>>) {
    let receiver = {
        let rx = rx.clone();
        hub::spawn(move || rx.recv().unwrap())
    };
    hub::yield_now();
    send_from_a_thread(tx, 1);
    assert_eq!(receiver.join().unwrap(), 1);
}

#[test]
fn a_value_sent_while_nobody_waited_counts_from_when_a_wait_found_it() {
    let (tx, rx) = hub::channel::<u32>();
    let rx = std::rc::Rc::new(rx);
    // Earlier readiness, consumed: a receiver woken by a send, and a
    // watcher that then took its value.
    a_receiver_woken_by_a_send(&tx, &rx);
    let watcher = {
        let rx = rx.clone();
        hub::spawn(move || hub::wait_any(&[&*rx], None))
    };
    hub::yield_now();
    send_from_a_thread(&tx, 2);
    assert_eq!(watcher.join().unwrap(), Some(0));
    assert_eq!(rx.try_recv(), Ok(2));
    // Then an event is set, and only after it a value comes, with nobody
    // waiting: the event was ready first.
    let event = Event::new();
    event.set();
    send_from_a_thread(&tx, 3);
    let items: [&dyn Waitable; 2] = [&*rx, &event];
    assert_eq!(hub::wait(&items, None, None), [1, 0]);
}

#[test]
fn a_receiver_never_watched_counts_from_the_first_look() {
    let (tx, rx) = hub::channel::<u32>();
    let rx = std::rc::Rc::new(rx);
    // A notification stamps the channel while only a receiver waits.
    a_receiver_woken_by_a_send(&tx, &rx);
    let event = Event::new();
    event.set();
    send_from_a_thread(&tx, 2);
    let items: [&dyn Waitable; 2] = [&*rx, &event];
    assert_eq!(hub::wait(&items, None, None), [1, 0]);
}

/// A value sent and taken at once (`try_recv`, or a `recv` that finds it)
/// leaves an empty channel that a later `wait_any` does not report: the
/// send's wake-up, which the hub handles only during that wait, is of a
/// value already gone, and the wait returns the event that did fire, as
/// it does for a queue or a semaphore in the same steps. Before, the
/// late wake-up counted as the channel becoming ready during the wait:
/// `wait_any` returned the (empty) channel, and a receive there would
/// have blocked.
#[test]
fn a_value_taken_before_a_wait_does_not_make_the_channel_ready_in_it() {
    for take_with_recv in [false, true] {
        let (tx, rx) = hub::channel::<u32>();
        let event = Event::new();
        let items: [&dyn Waitable; 2] = [&rx, &event];
        // A first wait, woken by the event, leaves the receiver watched
        // (and a send then posts a wake-up).
        let setter = |event: &Event| {
            let event = event.clone();
            hub::spawn(move || event.set());
        };
        setter(&event);
        assert_eq!(hub::wait_any(&items, None), Some(1));
        event.clear();
        tx.send(7).unwrap();
        if take_with_recv {
            assert_eq!(rx.recv(), Ok(7));
        } else {
            assert_eq!(rx.try_recv(), Ok(7));
        }
        setter(&event);
        assert_eq!(
            hub::wait_any(&items, None),
            Some(1),
            "taken by recv: {take_with_recv}"
        );
        assert_eq!(rx.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty));
        // The channel still wakes a wait for a value that comes later.
        event.clear();
        let sender = std::thread::spawn(move || tx.send(8).unwrap());
        assert_eq!(hub::wait_any(&items, None), Some(0));
        assert_eq!(rx.try_recv(), Ok(8));
        sender.join().unwrap();
    }
}

/// A value that comes while a wait waits counts for it, even if taken
/// before the hub handles the send's notification (a `try_recv` on the
/// waiting greenlet's thread right after the send), as a queue's item put
/// and taken while a wait waits does: what tells it from a value taken
/// before the wait looked (see the test above) is the take, which comes
/// after the wait saw the channel empty.
#[test]
fn a_value_sent_and_taken_while_a_wait_waits_still_counts_for_it() {
    let (tx, rx) = hub::channel::<u32>();
    let rx = std::rc::Rc::new(rx);
    let watcher = {
        let rx = rx.clone();
        hub::spawn(move || {
            let never = Event::new();
            let items: [&dyn Waitable; 2] = [&*rx, &never];
            hub::wait_any(&items, None)
        })
    };
    hub::yield_now(); // it looked, found nothing, and waits
    tx.send(5).unwrap();
    assert_eq!(rx.try_recv(), Ok(5));
    assert_eq!(watcher.join().unwrap(), Some(0));
}
