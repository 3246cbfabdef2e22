//! A recursive in-order walk of a binary tree, exposed as an `Iterator`.
//!
//! The walk is the plain recursive function anyone would write; it yields
//! each key from whatever depth it is at. A hand-written iterator would need
//! an explicit stack of pending nodes instead.
//!
//! Run with `cargo run --example tree_walk`.

use greenlet::{Generator, Yielder};

/// A binary search tree of `u32` keys.
#[derive(Default)]
pub struct Tree {
    root: Option<Box<Node>>,
}

struct Node {
    key: u32,
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

impl Tree {
    /// Inserts `key` (duplicates are kept, to the right).
    pub fn insert(&mut self, key: u32) {
        let mut slot = &mut self.root;
        while let Some(node) = slot {
            slot = if key < node.key {
                &mut node.left
            } else {
                &mut node.right
            };
        }
        *slot = Some(Box::new(Node {
            key,
            left: None,
            right: None,
        }));
    }

    /// The keys in order, produced lazily by a recursive walk on its own
    /// greenlet. The tree is shared with the walk through an `Rc` because a
    /// generator's producer must be `'static`.
    pub fn keys(tree: std::rc::Rc<Tree>) -> Generator<u32, usize> {
        Generator::new(move |y: &Yielder<u32>| walk(tree.root.as_deref(), y))
    }
}

/// Yields the keys below `node` in order; returns how many it yielded.
fn walk(node: Option<&Node>, y: &Yielder<u32>) -> usize {
    match node {
        None => 0,
        Some(n) => {
            let left = walk(n.left.as_deref(), y);
            y.yield_(n.key);
            left + 1 + walk(n.right.as_deref(), y)
        }
    }
}

/// Builds the example tree and returns its keys as the walk yields them.
pub fn run() -> (Vec<u32>, Option<usize>) {
    let mut tree = Tree::default();
    for key in [50, 30, 70, 20, 40, 60, 80, 35, 65] {
        tree.insert(key);
    }
    let mut keys = Tree::keys(std::rc::Rc::new(tree));
    let seen: Vec<u32> = keys.by_ref().collect();
    (seen, keys.return_value())
}

#[allow(dead_code)]
fn main() {
    let (keys, count) = run();
    println!("in order: {keys:?}");
    println!("the walk visited {} nodes", count.unwrap_or(0));
}
