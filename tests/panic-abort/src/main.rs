//! Run with `kill`, `timeout`, `throw` or `throw-main`: each needs unwinding, which this
//! build (panic = "abort") cannot do.

use std::time::Duration;

use greenlet::{hub, Greenlet};

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "kill" => {
            let g = Greenlet::new(|()| {
                let _: () = Greenlet::main().switch(()).unwrap();
            });
            g.switch::<(), ()>(()).unwrap();
            println!("killing");
            g.kill();
        }
        "timeout" => {
            println!("timing out");
            let _ = hub::with_timeout(Duration::from_millis(1), || {
                hub::sleep(Duration::from_secs(60))
            });
        }
        "throw" => {
            // A throw into a producer at its yield unwinds the producer.
            let mut g = greenlet::Generator::new(|y: &greenlet::Yielder<u32>| {
                y.yield_(1);
            });
            g.next();
            println!("throwing");
            let _ = g.throw(9u8);
        }
        "throw-main" => {
            // A throw into main while it drives the hub in `run`.
            let main = Greenlet::current().clone();
            hub::spawn(move || {
                let _ = main.throw::<u8, ()>(9u8);
            });
            println!("throwing");
            hub::run();
        }
        "exit" => {
            // A thread's exit tears down what needs no unwinding: an
            // unstarted greenlet's function is dropped, a suspended one
            // left as it is.
            struct Said;
            impl Drop for Said {
                fn drop(&mut self) {
                    println!("dropped");
                }
            }
            std::thread::spawn(|| {
                let said = Said;
                let unstarted = Greenlet::new(move |()| drop(said));
                let suspended = Greenlet::new(|()| {
                    let _: () = Greenlet::main().switch(()).unwrap();
                });
                suspended.switch::<(), ()>(()).unwrap();
                std::mem::forget((unstarted, suspended));
            })
            .join()
            .unwrap();
            println!("fine");
        }
        "ok" => {
            // Switches, returns and sleeps need no unwinding.
            let g = Greenlet::new(|x: u32| x + 1);
            assert_eq!(g.switch::<u32, u32>(1).unwrap(), 2);
            hub::sleep(Duration::from_millis(1));
            println!("fine");
        }
        _ => unreachable!("unknown mode {mode}"),
    }
}
