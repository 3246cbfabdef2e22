use greenlet::*;
use std::cell::RefCell;
use std::rc::Rc;

#[test]
fn basic() {
    let g = Greenlet::new(|x: i32| {
        let m = Greenlet::main();
        let y: i32 = m.switch(x + 1).unwrap();
        y * 2
    });
    assert_eq!(g.switch::<i32, i32>(1).unwrap(), 2);
    assert_eq!(g.switch::<i32, i32>(10).unwrap(), 20);
    assert!(g.is_dead());
    let s = stack_stats();
    println!("{s:?}");
}

#[test]
fn child_to_child() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l2 = log.clone();
    let b = Greenlet::new(move |x: i32| {
        l2.borrow_mut().push(format!("b got {x}"));
        x + 100
    });
    let l3 = log.clone();
    let b2 = b.clone();
    let a = Greenlet::new(move |x: i32| {
        l3.borrow_mut().push(format!("a got {x}"));
        // b's parent is main (created there) -> b's return goes to main
        let r: i32 = b2.switch(x + 1).unwrap();
        r
    });
    let r: i32 = a.switch(1).unwrap();
    assert_eq!(r, 102);
    assert!(b.is_dead());
    assert!(a.is_active());
    drop(a); // kills a
    println!("{:?}", log.borrow());
}

#[test]
fn panics_and_kill() {
    let g = Greenlet::new(|()| -> () { panic!("boom") });
    let e = g.switch::<(), ()>(()).unwrap_err();
    assert_eq!(e.message(), Some("boom"));

    struct D(Rc<RefCell<u32>>);
    impl Drop for D {
        fn drop(&mut self) {
            *self.0.borrow_mut() += 1;
        }
    }
    let c = Rc::new(RefCell::new(0));
    let c2 = c.clone();
    let g = Greenlet::new(move |()| {
        let _d = D(c2);
        let _: () = Greenlet::main().switch(()).unwrap();
        unreachable!()
    });
    g.switch::<(), ()>(()).unwrap();
    assert_eq!(*c.borrow(), 0);
    g.kill();
    assert_eq!(*c.borrow(), 1);
    assert!(g.is_dead());
    let c3 = c.clone();
    let g = Greenlet::new(move |()| {
        let _d = D(c3);
        let _: () = Greenlet::main().switch(()).unwrap();
    });
    g.switch::<(), ()>(()).unwrap();
    drop(g);
    assert_eq!(*c.borrow(), 2);
    println!("{:?}", stack_stats());
}

#[test]
fn thread_exit() {
    let c = Rc::new(RefCell::new(0));
    let _ = c;
    let h = std::thread::spawn(|| {
        struct D(std::sync::Arc<std::sync::atomic::AtomicU32>);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let n2 = n.clone();
        let g = Greenlet::new(move |()| {
            let _d = D(n2);
            let _: () = Greenlet::main().switch(()).unwrap();
        });
        g.switch::<(), ()>(()).unwrap();
        std::mem::forget(g);
        n
    });
    let n = h.join().unwrap();
    assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1);
}
