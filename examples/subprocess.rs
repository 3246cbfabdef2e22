//! Runs a command with a timeout and streams its output line by line as it
//! comes, while another greenlet keeps ticking on the same thread: the
//! child's pipe and its exit block only the greenlets that wait on them.
//!
//! Run with `cargo run --example subprocess [TIMEOUT_MS] [COMMAND...]`;
//! the default runs a shell loop that prints a line every 200 ms for 2 s,
//! under a 1,000 ms timeout (so it is killed half way).

use std::cell::Cell;
use std::io::{self, BufRead, BufReader};
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenlet::hub;
use greenlet::process::Command;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let timeout = Duration::from_millis(
        args.next()
            .map_or(1000, |a| a.parse().expect("TIMEOUT_MS must be a number")),
    );
    let mut command: Vec<String> = args.collect();
    if command.is_empty() {
        command = [
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; sleep 0.2; done",
        ]
        .map(String::from)
        .to_vec();
    }

    let start = Instant::now();
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::piped())
        .spawn()?;
    println!("started {:?} (pid {})", command, child.id());

    // Stream the output as it comes.
    let stdout = child.stdout.take().expect("stdout is piped");
    let streamer = hub::spawn(move || -> io::Result<usize> {
        let mut lines = 0;
        for line in BufReader::new(stdout).lines() {
            println!("[{:>5} ms] {}", start.elapsed().as_millis(), line?);
            lines += 1;
        }
        Ok(lines)
    });

    // Something else that keeps running meanwhile.
    let done = Rc::new(Cell::new(false));
    let ticks = {
        let done = done.clone();
        hub::spawn(move || {
            let mut ticks = 0u32;
            while !done.get() {
                hub::sleep(Duration::from_millis(50));
                ticks += 1;
            }
            ticks
        })
    };

    // Wait for the exit, blocking only main.
    let status = match child.wait_timeout(timeout)? {
        Some(status) => status,
        None => {
            println!(
                "[{:>5} ms] timed out: killing it",
                start.elapsed().as_millis()
            );
            child.kill()?;
            child.wait()?
        }
    };
    let lines = streamer.join().expect("the streamer panicked")?;
    done.set(true);
    let ticks = ticks.join().expect("the ticker panicked");
    println!("exit: {status}; {lines} lines streamed; the ticker ran {ticks} times meanwhile");
    Ok(())
}
