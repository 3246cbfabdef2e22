//! `net::DatagramServer`: a greenlet per datagram, the handler limit, the
//! graceful stop it shares with the TCP server (handlers still reply in
//! their grace; the socket closes with the last of them), a whole large
//! datagram, and a handler that panics.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub::{self, time, Event};
use greenlet::net::{DatagramServer, ReplySocket, UdpSocket};

const HOUR: Duration = Duration::from_secs(3600);

/// Counts the handlers unwound (killed) while it lives in their frame.
struct Count(Rc<Cell<u32>>);

impl Drop for Count {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.set(self.0.get() + 1);
        }
    }
}

fn echo(data: Vec<u8>, peer: SocketAddr, socket: &ReplySocket) {
    socket.send_to(&data, peer).unwrap();
}

fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// The port is free again: nothing holds the server's socket.
fn port_is_free(addr: SocketAddr) -> bool {
    UdpSocket::bind(addr).is_ok()
}

#[test]
fn each_datagram_is_answered_from_the_servers_address() {
    let server = DatagramServer::bind("127.0.0.1:0", echo).unwrap().start();
    let addr = server.local_addr();
    let clients: Vec<_> = (0..5u8)
        .map(|i| {
            hub::spawn(move || {
                let c = client();
                c.send_to(&[i; 3], addr).unwrap();
                let mut buf = [0u8; 8];
                let (n, from) = c.recv_from(&mut buf).unwrap();
                (buf[..n].to_vec(), from)
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        assert_eq!(c.join().unwrap(), (vec![i as u8; 3], addr));
    }
    server.stop(HOUR);
    assert!(server.is_stopped());
    assert_eq!(server.connections(), 0);
    assert_eq!(server.accept_errors(), 0);
    assert!(port_is_free(addr));
}

#[test]
fn without_a_limit_every_datagram_is_handled_at_once() {
    let gate = Event::new();
    let g = gate.clone();
    let server = DatagramServer::bind("127.0.0.1:0", move |data, peer, socket| {
        g.wait();
        echo(data, peer, socket);
    })
    .unwrap()
    .start();
    let c = client();
    for i in 0..3u8 {
        c.send_to(&[i], server.local_addr()).unwrap();
    }
    while server.connections() < 3 {
        hub::yield_now();
    }
    gate.set();
    let mut got: Vec<_> = (0..3).map(|_| recv(&c)).collect();
    got.sort();
    assert_eq!(got, [[0], [1], [2]]);
    server.stop(HOUR);
}

#[test]
fn the_handler_limit_leaves_datagrams_in_the_socket_buffer() {
    let (gate, running, peak) = (Event::new(), Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (g, r, p) = (gate.clone(), running.clone(), peak.clone());
    let server = DatagramServer::bind("127.0.0.1:0", move |data, peer, socket| {
        r.set(r.get() + 1);
        p.set(p.get().max(r.get()));
        g.wait();
        echo(data, peer, socket);
        r.set(r.get() - 1);
    })
    .unwrap()
    .max_handlers(1)
    .start();
    let c = client();
    for i in 0..4u8 {
        c.send_to(&[i], server.local_addr()).unwrap();
    }
    for _ in 0..10 {
        hub::yield_now();
    }
    assert_eq!(server.connections(), 1, "the others wait in the socket");
    gate.set();
    // One at a time, so in the order they were sent.
    let got: Vec<_> = (0..4).map(|_| recv(&c)).collect();
    assert_eq!(got, [[0], [1], [2], [3]]);
    assert_eq!(peak.get(), 1);
    server.stop(HOUR);
}

#[test]
fn a_handler_still_replies_in_its_grace_and_the_socket_closes_after_it() {
    time::pause();
    let gate = Event::new();
    let g = gate.clone();
    let server = DatagramServer::bind("127.0.0.1:0", move |data, peer, socket| {
        g.wait();
        echo(data, peer, socket);
    })
    .unwrap()
    .start();
    let addr = server.local_addr();
    let c = client();
    c.send_to(b"late", addr).unwrap();
    while server.connections() == 0 {
        hub::yield_now();
    }
    let opener = hub::spawn_after(Duration::from_secs(2), move || gate.set());
    let start = time::now();
    server.stop(Duration::from_secs(10));
    assert_eq!(
        time::now() - start,
        Duration::from_secs(2),
        "the grace ended with the handler"
    );
    assert!(server.is_stopped());
    assert_eq!(
        recv(&c),
        b"late",
        "sent through the server's socket during the stop"
    );
    assert!(port_is_free(addr));
    opener.join().unwrap();
    time::resume();
}

#[test]
fn handlers_left_after_the_grace_are_killed_and_the_socket_closes() {
    time::pause();
    let killed = Rc::new(Cell::new(0));
    let k = killed.clone();
    let never = Event::new();
    let server = DatagramServer::bind("127.0.0.1:0", move |_, _, _| {
        let _count = Count(k.clone());
        never.wait();
    })
    .unwrap()
    .start();
    let addr = server.local_addr();
    let c = client();
    for _ in 0..3 {
        c.send_to(b"x", addr).unwrap();
    }
    while server.connections() < 3 {
        hub::yield_now();
    }
    let start = time::now();
    server.stop(Duration::from_secs(5));
    assert_eq!(time::now() - start, Duration::from_secs(5));
    assert_eq!(killed.get(), 3);
    assert_eq!(server.connections(), 0);
    assert!(port_is_free(addr));
    time::resume();
}

#[test]
fn a_stopped_server_handles_nothing_more() {
    let handled = Rc::new(Cell::new(0));
    let h = handled.clone();
    let server = DatagramServer::bind("127.0.0.1:0", move |_, _, _| h.set(h.get() + 1))
        .unwrap()
        .start();
    let addr = server.local_addr();
    let c = client();
    c.send_to(b"1", addr).unwrap();
    while handled.get() == 0 {
        hub::yield_now();
    }
    server.stop(Duration::ZERO);
    // Sent to a port nobody holds now: nothing runs the handler.
    let _ = c.send_to(b"2", addr);
    for _ in 0..10 {
        hub::yield_now();
    }
    assert_eq!(handled.get(), 1);
    server.wait(); // returns at once
}

#[test]
fn a_panicking_handler_leaves_the_server_serving() {
    let server = DatagramServer::bind(
        "127.0.0.1:0",
        |data: Vec<u8>, peer, socket: &ReplySocket| {
            assert_ne!(data, b"boom", "this handler panics");
            echo(data, peer, socket);
        },
    )
    .unwrap()
    .start();
    let c = client();
    c.send_to(b"boom", server.local_addr()).unwrap();
    c.send_to(b"fine", server.local_addr()).unwrap();
    assert_eq!(recv(&c), b"fine");
    server.stop(HOUR);
    assert!(server.is_stopped());
}

#[test]
fn a_large_datagram_reaches_the_handler_whole() {
    let sizes = Rc::new(RefCell::new(Vec::new()));
    let s = sizes.clone();
    let server = DatagramServer::bind(
        "127.0.0.1:0",
        move |data: Vec<u8>, peer, socket: &ReplySocket| {
            s.borrow_mut().push((data.len(), data.capacity()));
            socket
                .send_to(&(data.len() as u32).to_le_bytes(), peer)
                .unwrap();
        },
    )
    .unwrap()
    .start();
    let c = client();
    let big: Vec<u8> = (0..60_000u32).map(|i| i as u8).collect();
    c.send_to(&big, server.local_addr()).unwrap();
    c.send_to(b"", server.local_addr()).unwrap();
    assert_eq!(recv(&c), 60_000u32.to_le_bytes());
    assert_eq!(recv(&c), 0u32.to_le_bytes());
    assert_eq!(
        *sizes.borrow(),
        [(60_000, 60_000), (0, 0)],
        "each at its own length"
    );
    server.stop(HOUR);
}

#[test]
fn handler_greenlets_are_named_after_the_sender() {
    let names = Rc::new(RefCell::new(Vec::new()));
    let n = names.clone();
    let server = DatagramServer::bind("127.0.0.1:0", move |_, peer, socket: &ReplySocket| {
        n.borrow_mut()
            .push(greenlet::Greenlet::current().name().unwrap().to_string());
        socket.send_to(b"ok", peer).unwrap();
    })
    .unwrap()
    .handler_name("dns")
    .start();
    let c = client();
    c.send_to(b"q", server.local_addr()).unwrap();
    assert_eq!(recv(&c), b"ok");
    assert_eq!(
        *names.borrow(),
        [format!("dns {}", c.local_addr().unwrap())]
    );
    server.stop(HOUR);
}

#[test]
#[should_panic(expected = "max_handlers needs at least 1")]
fn a_limit_of_zero_handlers_panics() {
    let _ = DatagramServer::bind("127.0.0.1:0", echo)
        .unwrap()
        .max_handlers(0);
}

#[test]
fn a_stop_from_another_thread_stops_it() {
    let server = DatagramServer::bind("127.0.0.1:0", echo).unwrap().start();
    let stopper = server.stopper();
    let t = std::thread::spawn(move || stopper.stop(Duration::ZERO));
    server.wait();
    assert!(t.join().unwrap());
    assert!(port_is_free(server.local_addr()));
}

#[test]
fn a_read_timeout_set_on_the_socket_is_cleared_so_an_idle_server_counts_no_errors() {
    time::pause();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let handled = Event::new();
    let h = handled.clone();
    let server = DatagramServer::new(socket, move |_, _, _| h.set()).start();
    let c = client();
    hub::sleep(Duration::from_secs(30)); // idle: no timeout, no error
    assert_eq!(server.accept_errors(), 0);
    // A datagram is handled at once: no error pause to wait out.
    let sent = time::now();
    c.send_to(b"x", server.local_addr()).unwrap();
    handled.wait();
    assert_eq!(time::now(), sent);
    server.stop(Duration::ZERO);
    time::resume();
}

#[test]
fn a_handler_may_hand_its_reply_socket_on_and_the_port_is_held_until_it_goes() {
    time::pause();
    let handed_on = Rc::new(Cell::new(false));
    let h = handed_on.clone();
    let server = DatagramServer::bind(
        "127.0.0.1:0",
        move |data: Vec<u8>, peer, reply: &ReplySocket| {
            let reply = reply.clone();
            // Answers later, from a greenlet of its own.
            hub::spawn(move || {
                hub::sleep(Duration::from_secs(5));
                reply.send_to(&data, peer).unwrap();
            });
            h.set(true);
        },
    )
    .unwrap()
    .start();
    let addr = server.local_addr();
    let c = client();
    c.send_to(b"later", addr).unwrap();
    while !handed_on.get() {
        hub::yield_now();
    }
    server.stop(Duration::ZERO); // the handler is done; its child is not
    assert!(!port_is_free(addr), "the child's clone holds the socket");
    assert_eq!(recv(&c), b"later");
    hub::idle();
    assert!(port_is_free(addr), "closed with the last clone");
    time::resume();
}

#[test]
fn a_stop_while_the_loop_waits_for_a_free_slot_kills_it_and_the_handler_after_the_grace() {
    time::pause();
    let handled = Rc::new(Cell::new(0));
    let h = handled.clone();
    let never = Event::new();
    let server = DatagramServer::bind("127.0.0.1:0", move |_, _, _| {
        h.set(h.get() + 1);
        never.wait();
    })
    .unwrap()
    .max_handlers(1)
    .start();
    let addr = server.local_addr();
    let c = client();
    for _ in 0..3 {
        c.send_to(b"x", addr).unwrap();
    }
    hub::idle(); // one handler runs; the loop waits for its slot
    assert_eq!(server.connections(), 1);
    let start = time::now();
    server.stop(Duration::from_secs(2));
    assert_eq!(time::now() - start, Duration::from_secs(2));
    assert_eq!(
        handled.get(),
        1,
        "the two waiting in the socket were never handled"
    );
    assert_eq!(server.connections(), 0);
    assert!(port_is_free(addr));
    time::resume();
}

#[test]
fn a_handler_that_stops_its_server_with_a_pool_of_one_is_the_last_handled() {
    let me: Rc<RefCell<Option<greenlet::net::ServerHandle>>> = Rc::default();
    let m = me.clone();
    let handled = Rc::new(RefCell::new(Vec::new()));
    let h = handled.clone();
    let server = DatagramServer::bind("127.0.0.1:0", move |data: Vec<u8>, _, _: &ReplySocket| {
        h.borrow_mut().push(data.clone());
        if data == b"stop" {
            let s = m.borrow().clone().unwrap();
            s.stop(HOUR);
            assert!(s.is_stopping());
        }
    })
    .unwrap()
    .max_handlers(1)
    .start();
    *me.borrow_mut() = Some(server.clone());
    let addr = server.local_addr();
    let c = client();
    for msg in [&b"stop"[..], b"after1", b"after2"] {
        c.send_to(msg, addr).unwrap();
    }
    server.wait();
    me.borrow_mut().take();
    assert_eq!(*handled.borrow(), [b"stop".to_vec()]);
    assert!(port_is_free(addr));
}

/// A connected socket whose peer is gone gets ECONNREFUSED (an ICMP port
/// unreachable, on Linux): one receive error, counted once, paced, and the
/// server serves on when the peer is back.
#[test]
fn an_error_reported_on_the_socket_is_counted_once_and_the_server_serves_on() {
    time::pause();
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(dead_addr).unwrap();
    socket.send(b"ping").unwrap(); // the ICMP's error waits on the socket
    let handled = Rc::new(Cell::new(0));
    let h = handled.clone();
    let server = DatagramServer::new(socket, move |_, _, _| h.set(h.get() + 1)).start();
    let addr = server.local_addr();
    hub::idle();
    time::advance(Duration::from_secs(5));
    assert_eq!(server.accept_errors(), 1);
    let peer = UdpSocket::bind(dead_addr).unwrap();
    peer.send_to(b"hi", addr).unwrap();
    while handled.get() == 0 {
        hub::yield_now();
    }
    assert_eq!(server.accept_errors(), 1);
    server.stop(Duration::ZERO);
    assert!(port_is_free(addr));
    time::resume();
}

#[test]
fn the_largest_ipv4_and_ipv6_datagrams_arrive_whole() {
    for (bind, size) in [("127.0.0.1:0", 65_507usize), ("[::1]:0", 65_527)] {
        let Ok(server) = DatagramServer::bind(bind, |d: Vec<u8>, peer, reply: &ReplySocket| {
            reply
                .send_to(&(d.len() as u32).to_le_bytes(), peer)
                .unwrap();
        }) else {
            continue; // no IPv6 loopback here
        };
        let server = server.start();
        let c = UdpSocket::bind(bind).unwrap();
        let big: Vec<u8> = (0..size).map(|i| i as u8).collect();
        c.send_to(&big, server.local_addr()).unwrap();
        assert_eq!(recv(&c), (size as u32).to_le_bytes());
        server.stop(Duration::ZERO);
    }
}
