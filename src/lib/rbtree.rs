// SPDX-License-Identifier: GPL-2.0-only
//! Intrusive red-black trees (Linux: lib/rbtree.c, include/linux/rbtree.h,
//! include/linux/rbtree_augmented.h).
//!
//! As in Linux, the tree does not search: the user embeds an [`RbNode`] in
//! its own struct, walks down with its own comparison ([`RbRoot::search`]
//! does the walk with a closure), hangs the new node at the place found
//! ([`RbRoot::rb_link_node`], Linux's `rb_link_node`) and rebalances
//! ([`RbRoot::rb_insert_color`]). Removal is [`RbRoot::rb_erase`].
//!
//! **Augmented trees** keep a per-node value computed from the node and its
//! children (the vmap free tree's `subtree_max_size`). The user describes it
//! with an [`RbAugment`] implementation, Linux's `struct rb_augment_callbacks`
//! as `RB_DECLARE_CALLBACKS` generates them from `RBCOMPUTE`; the
//! `_augmented` operations call it on every rotation and on the paths that
//! change. The non-augmented operations are the same code instantiated with
//! [`RbNoAugment`], whose callbacks compile to nothing.
//!
//! # The contract of a linked node
//!
//! The unsafe operations hand the tree raw pointers to nodes it does not
//! own. While a node is linked into an [`RbRoot`]:
//!
//! * it stays at the same address (pinned) and valid for reads and writes;
//!   it is not freed or moved until [`RbRoot::rb_erase`] (or the whole tree
//!   is abandoned with [`RbRoot::clear`] and never touched again);
//! * it is linked into this one tree only: one [`RbNode`] field, one tree;
//! * nothing but this module writes its [`RbNode`], and the tree is mutated
//!   only through `&mut RbRoot` (the user's lock serialises writers).
//!
//! Given that, the safe API below (`first`, `last`, `iter`, `search`,
//! `find`, `height`) only reads nodes reachable from a shared `&RbRoot`,
//! which no one can unlink while the borrow lasts.

use core::cmp::Ordering;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

/// Colour of a linked red node.
pub const RB_RED: u8 = 0;
/// Colour of a linked black node.
pub const RB_BLACK: u8 = 1;
/// Not linked into any tree (Linux's `RB_CLEAR_NODE` state).
pub const RB_DETACHED: u8 = 2;

type Link = *mut RbNode;

/// The link embedded in a tree's element (Linux's `struct rb_node`). Linux
/// packs the colour into the low bit of the parent pointer; here it is a
/// field of its own so that GDB shows `rb_parent`, `rb_right`, `rb_left`
/// and `rb_color` as they are.
#[repr(C)]
pub struct RbNode {
    rb_parent: Link,
    rb_right: Link,
    rb_left: Link,
    rb_color: u8,
}

impl RbNode {
    /// A node linked into no tree.
    pub const fn new() -> Self {
        Self {
            rb_parent: ptr::null_mut(),
            rb_right: ptr::null_mut(),
            rb_left: ptr::null_mut(),
            rb_color: RB_DETACHED,
        }
    }

    /// Is the node linked into a tree (Linux's `!RB_EMPTY_NODE`)?
    #[inline(always)]
    pub fn is_linked(&self) -> bool {
        self.rb_color != RB_DETACHED
    }

    #[inline(always)]
    pub fn parent(&self) -> Option<NonNull<RbNode>> {
        NonNull::new(self.rb_parent)
    }

    #[inline(always)]
    pub fn left(&self) -> Option<NonNull<RbNode>> {
        NonNull::new(self.rb_left)
    }

    #[inline(always)]
    pub fn right(&self) -> Option<NonNull<RbNode>> {
        NonNull::new(self.rb_right)
    }

    /// [`RB_RED`], [`RB_BLACK`] or [`RB_DETACHED`] (anything else is
    /// corruption, which invariant checkers report).
    #[inline(always)]
    pub fn color(&self) -> u8 {
        self.rb_color
    }

    /// Mark the node unlinked (Linux's `RB_CLEAR_NODE`).
    ///
    /// # Safety
    ///
    /// The node is not linked into a tree that will still be used: it was
    /// erased, or its tree was abandoned with [`RbRoot::clear`].
    pub unsafe fn clear(&mut self) {
        *self = Self::new();
    }

    /// Overwrite the colour, for tests of invariant checkers.
    #[cfg(test)]
    pub(crate) fn set_color_for_test(&mut self, color: u8) {
        self.rb_color = color;
    }
}

impl Default for RbNode {
    fn default() -> Self {
        Self::new()
    }
}

/// A struct with an embedded [`RbNode`]: the conversions of Linux's
/// `rb_entry` (`container_of`). Implement it with [`rb_entry!`].
///
/// # Safety
///
/// `RB_NODE_OFFSET` is the byte offset of a field of type [`RbNode`] inside
/// `Self`.
pub unsafe trait RbEntry: Sized {
    const RB_NODE_OFFSET: usize;

    /// The embedded link of `this` (pointer arithmetic only).
    ///
    /// # Safety
    ///
    /// `this` points to (the memory of) a `Self`.
    #[inline(always)]
    unsafe fn rb_node(this: NonNull<Self>) -> NonNull<RbNode> {
        // SAFETY: the field lies RB_NODE_OFFSET bytes inside the Self that
        // `this` points to (caller), so the offset stays in bounds; nothing
        // is dereferenced.
        unsafe { this.byte_add(Self::RB_NODE_OFFSET).cast() }
    }

    /// The struct around `node` (Linux's `rb_entry`).
    ///
    /// # Safety
    ///
    /// `node` is the [`RbNode`] field of a `Self`.
    #[inline(always)]
    unsafe fn from_rb_node(node: NonNull<RbNode>) -> NonNull<Self> {
        // SAFETY: by the caller's contract the field sits RB_NODE_OFFSET
        // bytes into a Self, so going back stays inside that object.
        unsafe { node.byte_sub(Self::RB_NODE_OFFSET).cast() }
    }
}

/// Implement [`RbEntry`] for `$type` whose [`RbNode`] is the field `$field`.
#[macro_export]
macro_rules! rb_entry {
    ($type:ty, $field:ident) => {
        // SAFETY: offset_of! names a field of $type, and the function below
        // only compiles if that field is an RbNode.
        unsafe impl $crate::lib::rbtree::RbEntry for $type {
            const RB_NODE_OFFSET: usize = {
                const fn _field_is_rb_node(e: &$type) -> &$crate::lib::rbtree::RbNode {
                    &e.$field
                }
                core::mem::offset_of!($type, $field)
            };
        }
    };
}

/// The callbacks of an augmented tree (Linux's `struct rb_augment_callbacks`
/// as `RB_DECLARE_CALLBACKS` builds them): `compute` is `RBCOMPUTE`, the
/// provided `propagate` and `rotate` are the generated ones.
///
/// # Safety
///
/// The callbacks are called with linked nodes in the middle of a rebalance:
/// they may read the node's children through [`RbNode::left`] /
/// [`RbNode::right`] and read and write the augmented value of the
/// containing structs, and nothing else (no links, no colours, no parents:
/// those are in flux).
pub unsafe trait RbAugment {
    /// False only for [`RbNoAugment`]: lets the tree skip the walks.
    const AUGMENTED: bool = true;

    /// Recompute the augmented value of `node` from its own data and its
    /// children's values. With `exit`, return true and leave the node alone
    /// if the stored value is already right (the caller stops there).
    ///
    /// # Safety
    ///
    /// `node` and its children are live linked nodes of one tree.
    unsafe fn compute(node: NonNull<RbNode>, exit: bool) -> bool;

    /// `new` takes over `old`'s augmented value (`new` replaces `old` at the
    /// top of the same subtree).
    ///
    /// # Safety
    ///
    /// Both are live nodes of one tree.
    unsafe fn copy(old: NonNull<RbNode>, new: NonNull<RbNode>);

    /// Recompute the values from `node` up to (not including) `stop`, or to
    /// the first node whose value does not change.
    ///
    /// # Safety
    ///
    /// `node` is null or a linked node; `stop` is null or one of its ancestors.
    #[inline(always)]
    unsafe fn propagate(mut node: *mut RbNode, stop: *mut RbNode) {
        if !Self::AUGMENTED {
            return;
        }
        while node != stop {
            let Some(n) = NonNull::new(node) else { return };
            // SAFETY: `n` is a linked node on the path to `stop` (caller).
            if unsafe { Self::compute(n, true) } {
                break;
            }
            // SAFETY: as above; its parent link is valid.
            node = unsafe { (*node).rb_parent };
        }
    }

    /// After a rotation, `new` tops the subtree `old` topped: it inherits
    /// `old`'s value and `old` is recomputed.
    ///
    /// # Safety
    ///
    /// Both are live nodes of one tree, `old` now a child of `new`.
    #[inline(always)]
    unsafe fn rotate(old: NonNull<RbNode>, new: NonNull<RbNode>) {
        if Self::AUGMENTED {
            // SAFETY: the caller's contract is that of copy and compute.
            unsafe {
                Self::copy(old, new);
                Self::compute(old, false);
            }
        }
    }
}

/// The callbacks of a plain tree: no augmented value.
pub struct RbNoAugment;

// SAFETY: the callbacks touch nothing.
unsafe impl RbAugment for RbNoAugment {
    const AUGMENTED: bool = false;

    #[inline(always)]
    unsafe fn compute(_node: NonNull<RbNode>, _exit: bool) -> bool {
        true
    }

    #[inline(always)]
    unsafe fn copy(_old: NonNull<RbNode>, _new: NonNull<RbNode>) {}
}

/// Where a new node hangs: under `parent` (none: as the root), on its left
/// or right. Found by [`RbRoot::search`] and valid until the tree changes.
pub struct RbLink<T> {
    parent: Link,
    left: bool,
    _entry: PhantomData<*mut T>,
}

impl<T: RbEntry> RbLink<T> {
    /// The node the new one would hang from.
    pub fn parent(&self) -> Option<NonNull<T>> {
        // SAFETY: a non-null parent of a link is a node of the searched tree,
        // which holds only `T`s.
        NonNull::new(self.parent).map(|p| unsafe { T::from_rb_node(p) })
    }

    /// Would the new node be its parent's left child?
    pub fn is_left(&self) -> bool {
        self.left
    }
}

/// The outcome of [`RbRoot::search`].
pub enum RbSearch<T> {
    /// A node compared equal.
    Found(NonNull<T>),
    /// No node compared equal; a new one would hang here.
    Vacant(RbLink<T>),
}

/// The root of a tree of `T`s (Linux's `struct rb_root`). It does not own the
/// nodes: dropping a non-empty root just forgets them.
pub struct RbRoot<T: RbEntry> {
    rb_node: Link,
    _entries: PhantomData<*mut T>,
}

impl<T: RbEntry> Default for RbRoot<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The struct around a non-null link of a tree of `T`s.
///
/// # Safety
///
/// `n` is the node of a `T` (every node of an `RbRoot<T>` is).
#[inline(always)]
unsafe fn entry<T: RbEntry>(n: Link) -> NonNull<T> {
    // SAFETY: the caller passes a non-null node of a T.
    unsafe { T::from_rb_node(NonNull::new_unchecked(n)) }
}

impl<T: RbEntry> RbRoot<T> {
    /// An empty tree (Linux's `RB_ROOT`).
    pub const fn new() -> Self {
        Self {
            rb_node: ptr::null_mut(),
            _entries: PhantomData,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rb_node.is_null()
    }

    /// The node at the top, where custom descents start.
    #[inline(always)]
    pub fn root(&self) -> Option<NonNull<T>> {
        // SAFETY: every node of this tree is a T.
        NonNull::new(self.rb_node).map(|n| unsafe { T::from_rb_node(n) })
    }

    /// Forget every node at once (Linux: assigning `RB_ROOT`). The nodes keep
    /// stale links: the caller must [`RbNode::clear`] each before reuse.
    pub fn clear(&mut self) {
        self.rb_node = ptr::null_mut();
    }

    /// The lowest node (Linux's `rb_first`).
    pub fn first(&self) -> Option<NonNull<T>> {
        let mut n = self.rb_node;
        if n.is_null() {
            return None;
        }
        // SAFETY: links reachable from a root point to its live nodes.
        unsafe {
            while !(*n).rb_left.is_null() {
                n = (*n).rb_left;
            }
            Some(entry(n))
        }
    }

    /// The highest node (Linux's `rb_last`).
    pub fn last(&self) -> Option<NonNull<T>> {
        let mut n = self.rb_node;
        if n.is_null() {
            return None;
        }
        // SAFETY: links reachable from a root point to its live nodes.
        unsafe {
            while !(*n).rb_right.is_null() {
                n = (*n).rb_right;
            }
            Some(entry(n))
        }
    }

    /// The nodes in order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            next: self.first(),
            _root: PhantomData,
        }
    }

    /// Walk down comparing with `cmp`, which says where the wanted key lies
    /// relative to the node it is shown: `Less` to its left, `Greater` to its
    /// right, `Equal` for a match.
    #[inline(always)]
    pub fn search(&self, mut cmp: impl FnMut(&T) -> Ordering) -> RbSearch<T> {
        let mut n = self.rb_node;
        let mut parent = ptr::null_mut();
        let mut left = false;
        while !n.is_null() {
            parent = n;
            // SAFETY: links reachable from a root point to live nodes of Ts,
            // which only `&mut self` may change.
            let e = unsafe { entry::<T>(n) };
            // SAFETY: as above.
            match cmp(unsafe { e.as_ref() }) {
                Ordering::Less => {
                    left = true;
                    // SAFETY: as above.
                    n = unsafe { (*n).rb_left };
                }
                Ordering::Greater => {
                    left = false;
                    // SAFETY: as above.
                    n = unsafe { (*n).rb_right };
                }
                Ordering::Equal => return RbSearch::Found(e),
            }
        }
        RbSearch::Vacant(RbLink {
            parent,
            left,
            _entry: PhantomData,
        })
    }

    /// [`RbRoot::search`] with the comparison split in two tests, for hot
    /// paths: `go_left` says the key lies left of the node, else `go_right`
    /// says it lies right of it, else the node matches. Each test is a
    /// plain branch, where a three-way `Ordering` would first be
    /// materialised as a value and compared again (four more instructions
    /// per level on arm64).
    #[inline(always)]
    pub fn search_by(&self, mut go_left: impl FnMut(&T) -> bool, mut go_right: impl FnMut(&T) -> bool) -> RbSearch<T> {
        let mut n = self.rb_node;
        let mut parent = ptr::null_mut();
        let mut left = false;
        while !n.is_null() {
            parent = n;
            // SAFETY: links reachable from a root point to live nodes of Ts,
            // which only `&mut self` may change.
            let e = unsafe { entry::<T>(n) };
            // SAFETY: as above.
            let item = unsafe { e.as_ref() };
            if go_left(item) {
                left = true;
                // SAFETY: as above.
                n = unsafe { (*n).rb_left };
            } else if go_right(item) {
                left = false;
                // SAFETY: as above.
                n = unsafe { (*n).rb_right };
            } else {
                return RbSearch::Found(e);
            }
        }
        RbSearch::Vacant(RbLink {
            parent,
            left,
            _entry: PhantomData,
        })
    }

    /// The node `cmp` calls `Equal` (see [`RbRoot::search`]).
    #[inline(always)]
    pub fn find(&self, cmp: impl FnMut(&T) -> Ordering) -> Option<NonNull<T>> {
        match self.search(cmp) {
            RbSearch::Found(e) => Some(e),
            RbSearch::Vacant(_) => None,
        }
    }

    /// Height (0 when empty): a red-black tree of n nodes is at most
    /// `2 * log2(n + 1)` high.
    pub fn height(&self) -> usize {
        fn h(n: Link) -> usize {
            if n.is_null() {
                return 0;
            }
            // SAFETY: links reachable from a borrowed root point to its live
            // nodes; the recursion is bounded by the (balanced) height.
            let (l, r) = unsafe { ((*n).rb_left, (*n).rb_right) };
            1 + h(l).max(h(r))
        }
        h(self.rb_node)
    }

    /// The link for a new node that goes right before `node` in order (its
    /// in-order predecessor slot), without a search from the root: Linux's
    /// `find_va_links` started from `node` when it is known to be the
    /// successor.
    ///
    /// # Safety
    ///
    /// `node` is linked into this tree.
    #[inline(always)]
    pub unsafe fn link_before(&self, node: NonNull<T>) -> RbLink<T> {
        // SAFETY: `node` is a live T of this tree (caller), and links of a
        // node of this tree point to its live nodes.
        unsafe {
            let mut n = T::rb_node(node).as_ptr();
            let mut left = true;
            if !(*n).rb_left.is_null() {
                n = (*n).rb_left;
                left = false;
                while !(*n).rb_right.is_null() {
                    n = (*n).rb_right;
                }
            }
            RbLink {
                parent: n,
                left,
                _entry: PhantomData,
            }
        }
    }

    /// Hang the unlinked `node` at `link` as a red leaf (Linux's
    /// `rb_link_node`). The tree is unbalanced until
    /// [`RbRoot::rb_insert_color`] (or `_augmented`) runs on `node`.
    ///
    /// # Safety
    ///
    /// `node` is valid, not linked into any tree, and keeps the contract of a
    /// linked node (module docs) from now on; `link` came from
    /// [`RbRoot::search`] on this tree with no change to it since.
    #[inline(always)]
    pub unsafe fn rb_link_node(&mut self, node: NonNull<T>, link: RbLink<T>) {
        // SAFETY: `node` is the caller's valid T; `link.parent` is a live
        // node of this tree (or null for the root), with a free child slot
        // on the side the search chose.
        unsafe {
            let n = T::rb_node(node).as_ptr();
            n.write(RbNode {
                rb_parent: link.parent,
                rb_right: ptr::null_mut(),
                rb_left: ptr::null_mut(),
                rb_color: RB_RED,
            });
            if link.parent.is_null() {
                self.rb_node = n;
            } else if link.left {
                (*link.parent).rb_left = n;
            } else {
                (*link.parent).rb_right = n;
            }
        }
    }

    /// Rebalance after [`RbRoot::rb_link_node`] (Linux's `rb_insert_color`).
    ///
    /// # Safety
    ///
    /// `node` was just linked into this tree by `rb_link_node`.
    #[inline(always)]
    pub unsafe fn rb_insert_color(&mut self, node: NonNull<T>) {
        // SAFETY: the caller's contract.
        unsafe { self.__rb_insert::<RbNoAugment>(T::rb_node(node).as_ptr()) }
    }

    /// [`RbRoot::rb_insert_color`] for an augmented tree (Linux's
    /// `rb_insert_augmented`). The rotations keep the augmented values, so
    /// the caller first makes `node`'s value and its ancestors' include it
    /// (Linux's users propagate before or after; before is cheaper).
    ///
    /// # Safety
    ///
    /// As for `rb_insert_color`; every node of the tree is augmented by `A`.
    #[inline(always)]
    pub unsafe fn rb_insert_augmented<A: RbAugment>(&mut self, node: NonNull<T>) {
        // SAFETY: the caller's contract.
        unsafe { self.__rb_insert::<A>(T::rb_node(node).as_ptr()) }
    }

    /// Unlink `node` and rebalance (Linux's `rb_erase`); `node` is marked
    /// unlinked and belongs to the caller again.
    ///
    /// # Safety
    ///
    /// `node` is linked into this tree.
    #[inline(always)]
    pub unsafe fn rb_erase(&mut self, node: NonNull<T>) {
        // SAFETY: the caller's contract.
        unsafe { self.rb_erase_augmented::<RbNoAugment>(node) }
    }

    /// [`RbRoot::rb_erase`] for an augmented tree (Linux's
    /// `rb_erase_augmented`).
    ///
    /// # Safety
    ///
    /// `node` is linked into this tree, whose nodes are augmented by `A`.
    #[inline(always)]
    pub unsafe fn rb_erase_augmented<A: RbAugment>(&mut self, node: NonNull<T>) {
        // SAFETY: `node` is a T linked into this tree (caller).
        unsafe {
            let n = T::rb_node(node).as_ptr();
            let rebalance = self.__rb_erase_augmented::<A>(n);
            if !rebalance.is_null() {
                self.____rb_erase_color::<A>(rebalance);
            }
            (*n).clear();
        }
    }

    /// Make `new` the child of `parent` that `old` was (or the root).
    ///
    /// # Safety
    ///
    /// `parent` is null or a node of this tree with `old` as a child.
    #[inline(always)]
    unsafe fn __rb_change_child(&mut self, old: Link, new: Link, parent: Link) {
        if parent.is_null() {
            self.rb_node = new;
            return;
        }
        // SAFETY: `parent` is a live node of this tree (caller).
        unsafe {
            if (*parent).rb_left == old {
                (*parent).rb_left = new;
            } else {
                (*parent).rb_right = new;
            }
        }
    }

    /// Second half of a rotation: `new` takes `old`'s parent and colour,
    /// `old` hangs under `new` with `color`.
    ///
    /// # Safety
    ///
    /// Both are live nodes of this tree; `new` is already linked as `old`'s
    /// parent in the child direction.
    #[inline(always)]
    unsafe fn __rb_rotate_set_parents(&mut self, old: Link, new: Link, color: u8) {
        // SAFETY: the caller's contract.
        unsafe {
            let parent = (*old).rb_parent;
            (*new).rb_parent = parent;
            (*new).rb_color = (*old).rb_color;
            (*old).rb_parent = new;
            (*old).rb_color = color;
            self.__rb_change_child(old, new, parent);
        }
    }

    /// Linux's `__rb_insert`: restore the colour rules above the red leaf
    /// `node`.
    ///
    /// # Safety
    ///
    /// `node` was just hung into this tree by `rb_link_node`.
    unsafe fn __rb_insert<A: RbAugment>(&mut self, mut node: Link) {
        // SAFETY: (whole body) every pointer followed is a node of this tree
        // reached through its links; a red parent is never the root, so the
        // grandparent exists; a red node's children are black or null.
        unsafe {
            let mut parent = (*node).rb_parent;
            loop {
                if parent.is_null() {
                    // The root is black.
                    (*node).rb_color = RB_BLACK;
                    break;
                }
                if (*parent).rb_color == RB_BLACK {
                    break;
                }
                let gparent = (*parent).rb_parent;
                let mut tmp = (*gparent).rb_right;
                if parent != tmp {
                    // parent == gparent.rb_left
                    if is_red(tmp) {
                        // Case 1: flip colours, continue from gparent.
                        (*tmp).rb_color = RB_BLACK;
                        (*parent).rb_color = RB_BLACK;
                        node = gparent;
                        parent = (*node).rb_parent;
                        (*node).rb_color = RB_RED;
                        continue;
                    }
                    tmp = (*parent).rb_right;
                    if node == tmp {
                        // Case 2: left rotate at parent.
                        tmp = (*node).rb_left;
                        (*parent).rb_right = tmp;
                        (*node).rb_left = parent;
                        if !tmp.is_null() {
                            set_parent_color(tmp, parent, RB_BLACK);
                        }
                        set_parent_color(parent, node, RB_RED);
                        A::rotate(nn(parent), nn(node));
                        parent = node;
                        tmp = (*node).rb_right;
                    }
                    // Case 3: right rotate at gparent.
                    (*gparent).rb_left = tmp;
                    (*parent).rb_right = gparent;
                    if !tmp.is_null() {
                        set_parent_color(tmp, gparent, RB_BLACK);
                    }
                    self.__rb_rotate_set_parents(gparent, parent, RB_RED);
                    A::rotate(nn(gparent), nn(parent));
                    break;
                } else {
                    tmp = (*gparent).rb_left;
                    if is_red(tmp) {
                        // Case 1: flip colours, continue from gparent.
                        (*tmp).rb_color = RB_BLACK;
                        (*parent).rb_color = RB_BLACK;
                        node = gparent;
                        parent = (*node).rb_parent;
                        (*node).rb_color = RB_RED;
                        continue;
                    }
                    tmp = (*parent).rb_left;
                    if node == tmp {
                        // Case 2: right rotate at parent.
                        tmp = (*node).rb_right;
                        (*parent).rb_left = tmp;
                        (*node).rb_right = parent;
                        if !tmp.is_null() {
                            set_parent_color(tmp, parent, RB_BLACK);
                        }
                        set_parent_color(parent, node, RB_RED);
                        A::rotate(nn(parent), nn(node));
                        parent = node;
                        tmp = (*node).rb_left;
                    }
                    // Case 3: left rotate at gparent.
                    (*gparent).rb_right = tmp;
                    (*parent).rb_left = gparent;
                    if !tmp.is_null() {
                        set_parent_color(tmp, gparent, RB_BLACK);
                    }
                    self.__rb_rotate_set_parents(gparent, parent, RB_RED);
                    A::rotate(nn(gparent), nn(parent));
                    break;
                }
            }
        }
    }

    /// Linux's `__rb_erase_augmented`: take `node` out of the tree, fix the
    /// augmented values, and return the node from which the colours must be
    /// rebalanced (null if none).
    ///
    /// # Safety
    ///
    /// `node` is linked into this tree.
    #[inline(always)]
    unsafe fn __rb_erase_augmented<A: RbAugment>(&mut self, node: Link) -> Link {
        // SAFETY: (whole body) all pointers are nodes of this tree reached
        // through its links; a node with two children has a successor in its
        // right subtree.
        unsafe {
            let child = (*node).rb_right;
            let mut tmp = (*node).rb_left;
            let rebalance;
            if tmp.is_null() {
                // Case 1: at most a right child, which takes node's place
                // (and colour: it is red, node black).
                let parent = (*node).rb_parent;
                self.__rb_change_child(node, child, parent);
                if !child.is_null() {
                    set_parent_color(child, parent, (*node).rb_color);
                    rebalance = ptr::null_mut();
                } else {
                    rebalance = if (*node).rb_color == RB_BLACK {
                        parent
                    } else {
                        ptr::null_mut()
                    };
                }
                tmp = parent;
            } else if child.is_null() {
                // Still case 1, with a left child.
                let parent = (*node).rb_parent;
                set_parent_color(tmp, parent, (*node).rb_color);
                self.__rb_change_child(node, tmp, parent);
                rebalance = ptr::null_mut();
                tmp = parent;
            } else {
                let mut successor = child;
                let mut parent;
                let child2;
                tmp = (*child).rb_left;
                if tmp.is_null() {
                    // Case 2: the successor is node's right child.
                    parent = successor;
                    child2 = (*successor).rb_right;
                    A::copy(nn(node), nn(successor));
                } else {
                    // Case 3: the successor is the leftmost node of the
                    // right subtree; its right child takes its place.
                    loop {
                        parent = successor;
                        successor = tmp;
                        tmp = (*tmp).rb_left;
                        if tmp.is_null() {
                            break;
                        }
                    }
                    child2 = (*successor).rb_right;
                    (*parent).rb_left = child2;
                    (*successor).rb_right = child;
                    (*child).rb_parent = successor;
                    A::copy(nn(node), nn(successor));
                    A::propagate(parent, successor);
                }
                tmp = (*node).rb_left;
                (*successor).rb_left = tmp;
                (*tmp).rb_parent = successor;

                let node_parent = (*node).rb_parent;
                self.__rb_change_child(node, successor, node_parent);
                if !child2.is_null() {
                    set_parent_color(child2, parent, RB_BLACK);
                    rebalance = ptr::null_mut();
                } else {
                    rebalance = if (*successor).rb_color == RB_BLACK {
                        parent
                    } else {
                        ptr::null_mut()
                    };
                }
                set_parent_color(successor, node_parent, (*node).rb_color);
                tmp = successor;
            }
            A::propagate(tmp, ptr::null_mut());
            rebalance
        }
    }

    /// Linux's `____rb_erase_color`: a black node left the subtree below
    /// `parent` on one side; rotate and recolour until the black heights
    /// agree again.
    ///
    /// # Safety
    ///
    /// `parent` is a node of this tree whose child side that lost a black
    /// node is null or the child passed down the loop; the sibling exists
    /// (the other side has black height at least one).
    unsafe fn ____rb_erase_color<A: RbAugment>(&mut self, mut parent: Link) {
        let mut node: Link = ptr::null_mut();
        // SAFETY: (whole body) every pointer followed is a node of this tree;
        // the sibling of a node with a black deficit is non-null, and a red
        // sibling has two black children.
        unsafe {
            loop {
                let mut sibling = (*parent).rb_right;
                if node != sibling {
                    // node == parent.rb_left
                    if is_red(sibling) {
                        // Case 1: left rotate at parent.
                        let tmp1 = (*sibling).rb_left;
                        (*parent).rb_right = tmp1;
                        (*sibling).rb_left = parent;
                        set_parent_color(tmp1, parent, RB_BLACK);
                        self.__rb_rotate_set_parents(parent, sibling, RB_RED);
                        A::rotate(nn(parent), nn(sibling));
                        sibling = tmp1;
                    }
                    let mut tmp1 = (*sibling).rb_right;
                    if !is_red(tmp1) {
                        let tmp2 = (*sibling).rb_left;
                        if !is_red(tmp2) {
                            // Case 2: sibling colour flip.
                            set_parent_color(sibling, parent, RB_RED);
                            if (*parent).rb_color == RB_RED {
                                (*parent).rb_color = RB_BLACK;
                            } else {
                                node = parent;
                                parent = (*node).rb_parent;
                                if !parent.is_null() {
                                    continue;
                                }
                            }
                            break;
                        }
                        // Case 3: right rotate at sibling.
                        tmp1 = (*tmp2).rb_right;
                        (*sibling).rb_left = tmp1;
                        (*tmp2).rb_right = sibling;
                        (*parent).rb_right = tmp2;
                        if !tmp1.is_null() {
                            set_parent_color(tmp1, sibling, RB_BLACK);
                        }
                        A::rotate(nn(sibling), nn(tmp2));
                        tmp1 = sibling;
                        sibling = tmp2;
                    }
                    // Case 4: left rotate at parent, colour flips.
                    let tmp2 = (*sibling).rb_left;
                    (*parent).rb_right = tmp2;
                    (*sibling).rb_left = parent;
                    set_parent_color(tmp1, sibling, RB_BLACK);
                    if !tmp2.is_null() {
                        (*tmp2).rb_parent = parent;
                    }
                    self.__rb_rotate_set_parents(parent, sibling, RB_BLACK);
                    A::rotate(nn(parent), nn(sibling));
                    break;
                } else {
                    sibling = (*parent).rb_left;
                    if is_red(sibling) {
                        // Case 1: right rotate at parent.
                        let tmp1 = (*sibling).rb_right;
                        (*parent).rb_left = tmp1;
                        (*sibling).rb_right = parent;
                        set_parent_color(tmp1, parent, RB_BLACK);
                        self.__rb_rotate_set_parents(parent, sibling, RB_RED);
                        A::rotate(nn(parent), nn(sibling));
                        sibling = tmp1;
                    }
                    let mut tmp1 = (*sibling).rb_left;
                    if !is_red(tmp1) {
                        let tmp2 = (*sibling).rb_right;
                        if !is_red(tmp2) {
                            // Case 2: sibling colour flip.
                            set_parent_color(sibling, parent, RB_RED);
                            if (*parent).rb_color == RB_RED {
                                (*parent).rb_color = RB_BLACK;
                            } else {
                                node = parent;
                                parent = (*node).rb_parent;
                                if !parent.is_null() {
                                    continue;
                                }
                            }
                            break;
                        }
                        // Case 3: left rotate at sibling.
                        tmp1 = (*tmp2).rb_left;
                        (*sibling).rb_right = tmp1;
                        (*tmp2).rb_left = sibling;
                        (*parent).rb_left = tmp2;
                        if !tmp1.is_null() {
                            set_parent_color(tmp1, sibling, RB_BLACK);
                        }
                        A::rotate(nn(sibling), nn(tmp2));
                        tmp1 = sibling;
                        sibling = tmp2;
                    }
                    // Case 4: right rotate at parent, colour flips.
                    let tmp2 = (*sibling).rb_right;
                    (*parent).rb_left = tmp2;
                    (*sibling).rb_right = parent;
                    set_parent_color(tmp1, sibling, RB_BLACK);
                    if !tmp2.is_null() {
                        (*tmp2).rb_parent = parent;
                    }
                    self.__rb_rotate_set_parents(parent, sibling, RB_BLACK);
                    A::rotate(nn(parent), nn(sibling));
                    break;
                }
            }
        }
    }
}

/// The parent of a linked node (Linux's `rb_parent` + `rb_entry`).
///
/// # Safety
///
/// `node` is a live node of a tree of `T`s (or unlinked: then `None`).
#[inline(always)]
pub unsafe fn rb_parent<T: RbEntry>(node: NonNull<T>) -> Option<NonNull<T>> {
    // SAFETY: the links of a live node point to nodes of its tree of Ts.
    unsafe { (*T::rb_node(node).as_ptr()).parent().map(|n| T::from_rb_node(n)) }
}

/// The left child of a linked node.
///
/// # Safety
///
/// As for [`rb_parent`].
#[inline(always)]
pub unsafe fn rb_left<T: RbEntry>(node: NonNull<T>) -> Option<NonNull<T>> {
    // SAFETY: the links of a live node point to nodes of its tree of Ts.
    unsafe { (*T::rb_node(node).as_ptr()).left().map(|n| T::from_rb_node(n)) }
}

/// The right child of a linked node.
///
/// # Safety
///
/// As for [`rb_parent`].
#[inline(always)]
pub unsafe fn rb_right<T: RbEntry>(node: NonNull<T>) -> Option<NonNull<T>> {
    // SAFETY: the links of a live node point to nodes of its tree of Ts.
    unsafe { (*T::rb_node(node).as_ptr()).right().map(|n| T::from_rb_node(n)) }
}

/// Is `child` the left child of `parent`? (Compares the links themselves,
/// which is cheaper than comparing [`rb_left`]'s `Option`.)
///
/// # Safety
///
/// `parent` is a live node of a tree of `T`s; `child` points to a `T`.
#[inline(always)]
pub unsafe fn rb_is_left_child<T: RbEntry>(parent: NonNull<T>, child: NonNull<T>) -> bool {
    // SAFETY: the caller's contract.
    unsafe { (*T::rb_node(parent).as_ptr()).rb_left == T::rb_node(child).as_ptr() }
}

/// The next node in order (Linux's `rb_next`).
///
/// # Safety
///
/// `node` is linked into a tree of `T`s that is not being changed.
#[inline(always)]
pub unsafe fn rb_next<T: RbEntry>(node: NonNull<T>) -> Option<NonNull<T>> {
    // SAFETY: `node` is a linked T (caller); links of a linked node point to
    // live nodes of its tree.
    unsafe {
        let mut n = T::rb_node(node).as_ptr();
        if !(*n).rb_right.is_null() {
            n = (*n).rb_right;
            while !(*n).rb_left.is_null() {
                n = (*n).rb_left;
            }
            return Some(entry(n));
        }
        // Up until we come from a left child: that parent is next.
        loop {
            let parent = (*n).rb_parent;
            if parent.is_null() {
                return None;
            }
            if (*parent).rb_right != n {
                return Some(entry(parent));
            }
            n = parent;
        }
    }
}

/// The previous node in order (Linux's `rb_prev`).
///
/// # Safety
///
/// As for [`rb_next`].
#[inline(always)]
pub unsafe fn rb_prev<T: RbEntry>(node: NonNull<T>) -> Option<NonNull<T>> {
    // SAFETY: `node` is a linked T (caller); links of a linked node point to
    // live nodes of its tree.
    unsafe {
        let mut n = T::rb_node(node).as_ptr();
        if !(*n).rb_left.is_null() {
            n = (*n).rb_left;
            while !(*n).rb_right.is_null() {
                n = (*n).rb_right;
            }
            return Some(entry(n));
        }
        loop {
            let parent = (*n).rb_parent;
            if parent.is_null() {
                return None;
            }
            if (*parent).rb_left != n {
                return Some(entry(parent));
            }
            n = parent;
        }
    }
}

/// In-order iterator over a borrowed [`RbRoot`].
pub struct Iter<'a, T: RbEntry> {
    next: Option<NonNull<T>>,
    _root: PhantomData<&'a RbRoot<T>>,
}

impl<'a, T: RbEntry + 'a> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        let e = self.next?;
        // SAFETY: `e` is a node of the borrowed tree, which cannot change
        // (nor its nodes be freed, by the linked-node contract) while the
        // borrow lasts.
        unsafe {
            self.next = rb_next(e);
            Some(e.as_ref())
        }
    }
}

/// # Safety
///
/// `n` is not null (the rebalance calls it on nodes it just dereferenced).
#[inline(always)]
unsafe fn nn(n: Link) -> NonNull<RbNode> {
    // SAFETY: the caller's contract.
    unsafe { NonNull::new_unchecked(n) }
}

/// Is `n` a red node (null counts as black)?
///
/// # Safety
///
/// `n` is null or a live node.
#[inline(always)]
unsafe fn is_red(n: Link) -> bool {
    // SAFETY: the caller's contract.
    !n.is_null() && unsafe { (*n).rb_color } == RB_RED
}

/// # Safety
///
/// `n` is a live node.
#[inline(always)]
unsafe fn set_parent_color(n: Link, parent: Link, color: u8) {
    // SAFETY: the caller's contract.
    unsafe {
        (*n).rb_parent = parent;
        (*n).rb_color = color;
    }
}

#[cfg(test)]
mod tests;
