//! A clear message when a greenlet overflows its stack.
//!
//! A greenlet that runs off the end of its stack hits the guard page below
//! it and the kernel raises SIGSEGV (or SIGBUS). The handler installed here,
//! once per process, runs on the thread's alternate signal stack (Rust's
//! runtime gives every thread it starts one; greenlet runtimes add one to a
//! thread that has none, and to a thread whose own Rust's runtime has
//! removed as the thread exits, when a kill or the teardown may still run
//! greenlet code; see `ensure_alt_stack`). If the faulting address lies in the guard page of
//! the stack of this thread's current greenlet, it prints
//!
//! ```text
//! greenlet 'NAME' (id N) overflowed its stack of S KiB; raise it with Builder::stack_size or StackPolicy::stack_size
//! ```
//!
//! to stderr and aborts. Any other fault goes to the handler that was there
//! before, unchanged (Rust's own, which reports thread stack overflows, or
//! the default action).
//!
//! Everything the handler does is async-signal-safe: it reads this thread's
//! runtime through its thread-local pointer, formats into a buffer on the
//! signal stack and calls `write(2)` and `abort(3)`.

use std::cell::Cell;
use std::mem::{self, MaybeUninit};
use std::ptr;
use std::sync::Once;

use crate::runtime::Runtime;

/// The handlers that were installed before ours, for SIGSEGV and SIGBUS.
static mut PREVIOUS: [MaybeUninit<libc::sigaction>; 2] = [MaybeUninit::uninit(); 2];
static INSTALL: Once = Once::new();

/// Size of the alternate signal stack given to threads that have none.
const ALT_STACK_SIZE: usize = 64 * 1024;

thread_local! {
    /// An alternate signal stack this module mapped for this thread, if any.
    static ALT_STACK: Cell<*mut libc::c_void> = const { Cell::new(ptr::null_mut()) };
}

/// Installs the handler (once per process) and makes sure the calling
/// thread has an alternate signal stack.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        for (i, signal) in [libc::SIGSEGV, libc::SIGBUS].into_iter().enumerate() {
            // SAFETY: a zeroed `sigaction` is a valid starting point; the
            // handler has the `SA_SIGINFO` signature; `PREVIOUS` is written
            // here only, inside `call_once`, before the handler can run for
            // this signal (it is read only by the handler afterwards).
            unsafe {
                let mut action: libc::sigaction = mem::zeroed();
                action.sa_sigaction = handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                let previous = ptr::addr_of_mut!(PREVIOUS[i]).cast::<libc::sigaction>();
                libc::sigaction(signal, &action, previous);
            }
        }
    });
    ensure_alt_stack();
}

/// Gives the calling thread an alternate signal stack if it has none, so the
/// handler can run when the thread's current stack is the one that overflowed.
///
/// Called when a runtime starts, and again on the paths that may run a
/// greenlet's code while the thread exits (a kill, the runtime's
/// teardown): Rust's runtime removes the alternate stack it gave a thread
/// once the thread's main function returns, before the thread-locals'
/// destructors run, and one of those may kill a greenlet (a handle kept in
/// a thread-local) whose destructors overflow. One query (`sigaltstack`)
/// when the thread has a stack; a mapping of this module's, kept until the
/// runtime's teardown, when it has none.
pub(crate) fn ensure_alt_stack() {
    // SAFETY: `stack_t` is a plain C struct, valid all zeroes.
    let mut current: libc::stack_t = unsafe { mem::zeroed() };
    // SAFETY: a null new stack only queries; `current` is a valid,
    // writable `stack_t`.
    if unsafe { libc::sigaltstack(ptr::null(), &mut current) } != 0
        || current.ss_flags & libc::SS_DISABLE == 0
    {
        return;
    }
    // Ours, if Rust's runtime disabled it with its own (it disables
    // whatever is registered): registered again rather than mapped anew.
    let mut stack = ALT_STACK.with(Cell::get);
    let fresh = stack.is_null();
    if fresh {
        // SAFETY: a fresh private anonymous mapping, unmapped only by
        // `release_alt_stack` (or below, if it cannot be registered).
        stack = unsafe {
            libc::mmap(
                ptr::null_mut(),
                ALT_STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if stack == libc::MAP_FAILED {
            return;
        }
    }
    let new = libc::stack_t {
        ss_sp: stack,
        ss_flags: 0,
        ss_size: ALT_STACK_SIZE,
    };
    // SAFETY: `stack` is a live mapping of `ALT_STACK_SIZE` bytes that
    // stays mapped while it is registered (`release_alt_stack` disables
    // it before unmapping it).
    if unsafe { libc::sigaltstack(&new, ptr::null_mut()) } != 0 {
        if fresh {
            // SAFETY: mapped just above and registered nowhere.
            unsafe { libc::munmap(stack, ALT_STACK_SIZE) };
        }
        return;
    }
    ALT_STACK.with(|s| s.set(stack));
}

/// The signal handler; see the module docs.
extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO`
    // handler; `si_addr` is the faulting address for SIGSEGV and SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some(overflow) = Runtime::overflow_at(addr) {
        report(&overflow);
        // SAFETY: abort is async-signal-safe.
        unsafe { libc::abort() };
    }
    // Not ours: hand it to whoever was installed before.
    let i = if signal == libc::SIGSEGV { 0 } else { 1 };
    // SAFETY: `PREVIOUS[i]` was filled by `install` before our handler was
    // installed for this signal.
    let previous = unsafe { ptr::addr_of!(PREVIOUS[i]).cast::<libc::sigaction>().read() };
    match previous.sa_sigaction {
        libc::SIG_DFL | libc::SIG_IGN => {
            // Restore it and return: the faulting instruction runs again and
            // the default action (a core dump) happens.
            // SAFETY: re-installing a previously valid action.
            unsafe { libc::sigaction(signal, &previous, ptr::null_mut()) };
        }
        f if previous.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous handler has the `SA_SIGINFO` signature.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { mem::transmute(f) };
            f(signal, info, context);
        }
        f => {
            // SAFETY: the previous handler has the plain signature.
            let f: extern "C" fn(libc::c_int) = unsafe { mem::transmute(f) };
            f(signal);
        }
    }
}

/// What the handler knows about an overflowed greenlet.
pub(crate) struct Overflow {
    pub(crate) name: Option<(*const u8, usize)>,
    pub(crate) id: u64,
    pub(crate) stack_size: usize,
}

/// Writes the message to stderr without allocating.
fn report(o: &Overflow) {
    let mut buf = Buffer {
        bytes: [0; 512],
        len: 0,
    };
    buf.push(b"greenlet ");
    match o.name {
        Some((name, len)) => {
            buf.push(b"'");
            // SAFETY: the name's bytes live in the record's `Rc<str>`, which
            // the (suspended) runtime does not touch while this runs.
            buf.push(unsafe { std::slice::from_raw_parts(name, len.min(200)) });
            buf.push(b"' ");
        }
        None => buf.push(b"<unnamed> "),
    }
    buf.push(b"(id ");
    buf.number(o.id);
    buf.push(b") overflowed its stack of ");
    buf.number((o.stack_size / 1024) as u64);
    buf.push(b" KiB; raise it with Builder::stack_size or StackPolicy::stack_size\n");
    // SAFETY: writing a valid buffer to fd 2.
    unsafe { libc::write(2, buf.bytes.as_ptr().cast(), buf.len) };
}

struct Buffer {
    bytes: [u8; 512],
    len: usize,
}

impl Buffer {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

/// Unmaps the alternate signal stack this module gave the thread, if any.
pub(crate) fn release_alt_stack() {
    let stack = ALT_STACK
        .try_with(|s| s.replace(ptr::null_mut()))
        .unwrap_or(ptr::null_mut());
    if !stack.is_null() {
        // SAFETY: disable the alternate stack before unmapping it.
        unsafe {
            let off = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            libc::sigaltstack(&off, ptr::null_mut());
            libc::munmap(stack, ALT_STACK_SIZE);
        }
    }
}
