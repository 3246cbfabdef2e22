//! Run with `kill`, `timeout` or `exit`: each needs unwinding, which this
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
