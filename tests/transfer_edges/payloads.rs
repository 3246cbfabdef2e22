//! A thrown `Box<dyn Any + Send>` or generator `Thrown` is the payload
//! itself (row 10): re-throwing what was received keeps its message and
//! downcasts.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use greenlet::{Generator, Greenlet, SwitchError, Yielder};

fn payload(msg: &'static str) -> Box<dyn Any + Send> {
    Box::new(msg)
}

#[test]
fn throw_box_into_unstarted() {
    let g = Greenlet::new(|()| -> () { unreachable!() });
    let e = g.throw::<_, ()>(payload("boxed")).unwrap_err();
    assert_eq!(e.message(), Some("boxed"), "{e:?}");
}

#[test]
fn throw_box_into_dead() {
    let g = Greenlet::new(|()| ());
    g.switch::<(), ()>(()).unwrap();
    let e = g.throw::<_, ()>(payload("boxed")).unwrap_err();
    assert_eq!(e.message(), Some("boxed"), "{e:?}");
}

#[test]
fn throw_box_into_self() {
    let g = Greenlet::new(|()| -> Option<String> {
        let me: Greenlet = Greenlet::current().into();
        match me.throw::<_, ()>(payload("self")) {
            Err(SwitchError::Thrown(p)) => p.downcast_ref::<&str>().map(|s| s.to_string()),
            _ => None,
        }
    });
    assert_eq!(
        g.switch::<(), Option<String>>(()).unwrap().as_deref(),
        Some("self")
    );
}

#[test]
fn throw_box_box_is_one_level() {
    let inner: Box<dyn Any + Send> = payload("x");
    let outer: Box<Box<dyn Any + Send>> = Box::new(inner);
    let g = Greenlet::new(|()| -> () { unreachable!() });
    let e = g.throw::<_, ()>(outer).unwrap_err();
    let SwitchError::Thrown(p) = e else { panic!() };
    // Not a Box<dyn Any + Send>: boxed as any other error.
    let b = p.downcast::<Box<Box<dyn Any + Send>>>().expect("as thrown");
    assert_eq!(b.downcast_ref::<&str>(), Some(&"x"));
}

#[test]
fn generator_throw_box_unstarted_and_finished() {
    let mut gen = Generator::new(|y: &Yielder<u8>| {
        y.yield_(1);
    });
    let t = gen.throw(payload("gen")).unwrap_err();
    assert_eq!(t.message(), Some("gen"));
    assert!(gen.is_finished());
    let t = gen.throw(payload("again")).unwrap_err();
    assert_eq!(t.message(), Some("again"));
}

#[test]
fn generator_throw_box_suspended() {
    let mut gen = Generator::new(|y: &Yielder<u8>| -> Option<String> {
        match y.try_yield(1) {
            Ok(()) => None,
            Err(t) => t.message().map(String::from),
        }
    });
    assert_eq!(gen.next(), Some(1));
    assert_eq!(gen.throw(payload("mid")).unwrap(), None);
    assert_eq!(gen.return_value().unwrap().as_deref(), Some("mid"));
}

/// A caught kill's payload, thrown on: the receiver gets the kill's own
/// payload as `Thrown` now (before: nested in a box).
#[test]
fn throw_caught_kill_payload() {
    let target = Greenlet::new(|()| -> String {
        match Greenlet::main().switch::<(), ()>(()) {
            Err(e) => format!("{e:?} msg={:?}", e.message()),
            Ok(()) => "ok".into(),
        }
    });
    target.switch::<(), ()>(()).unwrap();
    let t2 = target.clone();
    let killer = Greenlet::new(move |()| -> String {
        // Kill oneself, catch it, throw the payload on.
        let p = catch_unwind(AssertUnwindSafe(|| {
            let me: Greenlet = Greenlet::current().into();
            me.kill();
        }))
        .unwrap_err();
        match t2.throw::<_, ()>(p) {
            Ok(()) => "back ok".into(),
            Err(e) => format!("back {e:?}"),
        }
    });
    let r = catch_unwind(AssertUnwindSafe(|| killer.switch::<(), String>(())));
    eprintln!("killer switch: {r:?}");
    eprintln!("target dead: {}", target.is_dead());
}

/// Re-throwing a received generator `Thrown` (what `Generator::throw` and
/// `try_yield` hand out) into another generator: boxed again, so its
/// message and downcasts are lost (the problem the fix solved for
/// `Box<dyn Any + Send>`).
#[test]
fn rethrow_generator_thrown_into_generator() {
    let mut a = Generator::new(|y: &Yielder<u8>| {
        y.yield_(1);
    });
    let t = a.throw("disk full").unwrap_err();
    assert_eq!(t.message(), Some("disk full"));
    let mut b = Generator::new(|y: &Yielder<u8>| -> Option<String> {
        match y.try_yield(1) {
            Ok(()) => None,
            Err(t) => Some(format!("msg={:?} is_str={}", t.message(), t.is::<&str>())),
        }
    });
    assert_eq!(b.next(), Some(1));
    assert_eq!(b.throw(t).unwrap(), None);
    let got = b.return_value().unwrap().unwrap();
    assert_eq!(got, "msg=Some(\"disk full\") is_str=true");
}

/// Re-throwing a received `SwitchError` as it is.
#[test]
fn rethrow_switch_error_into_greenlet() {
    let inner = Greenlet::new(|()| -> () { panic!("disk full") });
    let e = inner.switch::<(), ()>(()).unwrap_err();
    let outer = Greenlet::new(|()| match Greenlet::main().switch::<(), ()>(()) {
        Err(e) => e.message().map(String::from),
        Ok(()) => None,
    });
    outer.switch::<(), ()>(()).unwrap();
    let message: Option<String> = outer.throw(e).unwrap();
    eprintln!("SwitchError rethrown: {message:?}");
}
