//! Zero-copy file serving with `sendfile(2)` on a raw, non-blocking socket:
//! when the socket's buffer is full the call says `EAGAIN`, and
//! `hub::wait_writable` blocks only the sending greenlet until the peer has
//! read enough (gevent's `wait_write`). A receiver greenlet on the same
//! thread drains the connection meanwhile.
//!
//! Run with `cargo run --release --example sendfile [MIB]` (default 8).

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use greenlet::hub;
use greenlet::net::TcpListener;

/// Sends all of `file` down `sock` (a non-blocking socket the hub knows
/// nothing about), waiting for room whenever the kernel says `EAGAIN`.
/// Returns the bytes sent and how many times it had to wait.
#[cfg(target_os = "linux")]
fn send_file(file: &std::fs::File, sock: &std::net::TcpStream) -> io::Result<(u64, u32)> {
    let len = file.metadata()?.len();
    let mut offset: libc::off_t = 0;
    let mut waits = 0;
    while (offset as u64) < len {
        let left = (len - offset as u64).min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the call (borrowed from
        // live values) and `offset` is a valid, exclusive `off_t`, which
        // the kernel advances by what it sent.
        let n = unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut offset, left) };
        if n >= 0 {
            continue;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => {
                waits += 1;
                hub::wait_writable(sock, None)?; // only this greenlet waits
            }
            io::ErrorKind::Interrupted => {}
            _ => return Err(e),
        }
    }
    Ok((offset as u64, waits))
}

#[cfg(target_os = "linux")]
fn main() -> io::Result<()> {
    let mib: u64 = std::env::args()
        .nth(1)
        .map_or(8, |a| a.parse().expect("MIB must be a number"));
    // The file to serve: `mib` MiB of a repeating pattern.
    let path = std::env::temp_dir().join(format!("greenlet-sendfile-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&path)?;
        let block: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..mib {
            f.write_all(&block)?;
        }
    }
    let file = std::fs::File::open(&path)?;
    std::fs::remove_file(&path)?; // the open descriptor keeps it alive

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = hub::spawn(move || -> io::Result<(u64, u64)> {
        let (mut conn, _) = listener.accept()?;
        let (mut total, mut sum) = (0u64, 0u64);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok((total, sum));
            }
            total += n as u64;
            sum = buf[..n]
                .iter()
                .fold(sum, |s, b| s.wrapping_add(u64::from(*b)));
        }
    });

    // A plain std socket in non-blocking mode: the raw-fd case.
    let sock = std::net::TcpStream::connect(addr)?;
    sock.set_nonblocking(true)?;
    let (sent, waits) = send_file(&file, &sock)?;
    drop(sock); // EOF for the receiver
    let (received, sum) = receiver.join().expect("receiver panicked")?;

    let expected: u64 = (0..1u64 << 20).map(|i| i % 251).sum::<u64>() * mib;
    println!("sent {sent} bytes with sendfile, waiting for room {waits} times");
    println!(
        "received {received} bytes, checksum ok: {}",
        sum == expected
    );
    assert_eq!(sent, received);
    assert_eq!(sum, expected);
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("this example uses Linux's sendfile(2)");
}
