//! Greenlets and async code in one program, both ways round.
//!
//! 1. Blocking-style greenlets use an async client: each greenlet talks to
//!    a tokio TCP service through `tokio::net::TcpStream`, awaiting with
//!    `hub::block_on`, which blocks only that greenlet.
//! 2. Async code uses greenlet code: tokio tasks call into this thread's
//!    greenlets with `Remote::call` and await the results.
//!
//! A tokio multi-thread runtime runs in the background and drives the
//! sockets and timers; the greenlets all run on the main thread.
//!
//! Run with `cargo run --example async_bridge`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenlet::hub;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// An async service: answers each line with the line upper-cased.
async fn shout_service(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            // A bounded read: a peer cannot make one line grow forever.
            let mut lines = BufReader::new(read.take(64 * 1024)).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = format!("{}\n", line.to_uppercase());
                if write.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// An async client, as a driver crate would offer it.
async fn shout(addr: std::net::SocketAddr, words: &str) -> std::io::Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{words}\n").as_bytes()).await?;
    let mut reply = String::new();
    BufReader::new(read.take(64 * 1024))
        .read_line(&mut reply)
        .await?;
    Ok(reply.trim_end().to_string())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // tokio's sockets and timers need the runtime's context on the thread
    // that creates and polls them: the main greenlet holds it throughout.
    let _context = rt.enter();

    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    rt.spawn(shout_service(listener));

    println!("1. greenlets awaiting an async client");
    let greetings: [&'static str; 3] = ["hello", "from a greenlet", "blocking only itself"];
    let clients: Vec<_> = greetings
        .into_iter()
        .enumerate()
        .map(|(i, words)| {
            hub::spawn(move || {
                // Plain blocking-style code around the await.
                hub::sleep(Duration::from_millis(10 * i as u64));
                let reply = hub::block_on(shout(addr, words)).expect("the service answers");
                format!("   greenlet {i}: {words:?} -> {reply:?}")
            })
        })
        .collect();
    for client in clients {
        println!("{}", client.join().expect("the client greenlet"));
    }

    println!("2. async tasks calling greenlet code with Remote::call");
    // Greenlet-side state: !Send, used only by this thread's greenlets.
    let stock = Rc::new(RefCell::new(vec![("apples", 3), ("pears", 0)]));
    let remote = hub::remote();
    let orders = rt.spawn(async move {
        let mut log = Vec::new();
        for item in ["apples", "pears", "plums"] {
            // The closure runs in a new greenlet on the main thread. It is
            // `Send`; the greenlet reaches the stock through a thread-local.
            let answer = remote
                .call(move || {
                    hub::sleep(Duration::from_millis(1)); // blocking-style code
                    STOCK.with(|s| take(s.borrow().as_ref().expect("the stock is set"), item))
                })
                .await
                .expect("the greenlet answers");
            log.push(format!("   task: order {item:?} -> {answer:?}"));
        }
        log
    });
    STOCK.with(|s| *s.borrow_mut() = Some(stock.clone()));
    // The main greenlet awaits the tokio task; meanwhile the hub runs the
    // greenlets the calls spawn.
    for line in hub::block_on(orders).expect("the tokio task") {
        println!("{line}");
    }
    println!("   stock left: {:?}", stock.borrow());
    STOCK.with(|s| s.borrow_mut().take());
}

type Stock = Rc<RefCell<Vec<(&'static str, u32)>>>;

thread_local! {
    static STOCK: RefCell<Option<Stock>> = const { RefCell::new(None) };
}

/// Takes one of `item` from the stock, if there is any.
fn take(stock: &Stock, item: &str) -> Result<u32, String> {
    let mut stock = stock.borrow_mut();
    match stock.iter_mut().find(|(name, _)| *name == item) {
        Some((_, 0)) => Err(format!("out of {item}")),
        Some((_, n)) => {
            *n -= 1;
            Ok(*n)
        }
        None => Err(format!("no such item: {item}")),
    }
}
