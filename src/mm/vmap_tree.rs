//! The vmap area trees: the data structure under vmalloc, vmap and ioremap.
//!
//! Linux 5.10 (`mm/vmalloc.c`, "Global kva allocator") keeps every piece of
//! the vmalloc range `[VMALLOC_START, VMALLOC_END)` in exactly one of these:
//!
//! * the **busy** tree `vmap_area_root` + the address-sorted `vmap_area_list`:
//!   ranges handed out by `alloc_vmap_area`, found again by `vfree` through
//!   [`__find_vmap_area`];
//! * the **free** tree `free_vmap_area_root` + `free_vmap_area_list`: the
//!   holes, augmented with `subtree_max_size` so that
//!   [`find_vmap_lowest_match`] finds the lowest-address hole that fits in
//!   O(log n);
//! * the lazy-purge set: ranges already unmapped whose TLB entries have not
//!   been flushed yet (a third, non-augmented [`VmapAreaRoot`] as in 5.10, or
//!   a chain through [`VmapArea::purge_next`]).
//!
//! One [`VmapAreaRoot`] type serves all trees: a red-black tree keyed by
//! `va_start` with an address-sorted doubly-linked list threaded through the
//! same intrusive [`VmapArea`] nodes. Nodes are owned by the caller's object
//! cache ([`VmapAreaAlloc`]); tree operations never allocate memory except the
//! one node a "no edge" split needs, taken from that cache.
//!
//! This module is portable and host-tested; the kernel's `vmalloc.rs` wraps
//! the roots in locks and builds `alloc_vmap_area`/`free_vmap_area` on top.
//! The free-space functions keep Linux's names and are `#[no_mangle]`, so
//! `break find_vmap_lowest_match` works in GDB.
//!
//! # Search length
//!
//! Linux 5.10 prunes the free tree with `size + align - 1`, which makes a
//! subtree worth entering only if it surely holds an aligned fit. All vmap
//! ranges are page-granular, so `size + align - min(align, PAGE_SIZE)` gives
//! the same guarantee while also accepting exact-size holes for page-aligned
//! requests (which 5.10 skips). A smaller hole that happens to be aligned is
//! used only if no such "surely fitting" hole exists (a second, exact search).
//! [`find_vmap_lowest_match`] and [`check_lowest_match`] share this rule.

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use crate::arch::memory::PAGE_SIZE;

const RB_RED: u8 = 0;
const RB_BLACK: u8 = 1;
/// Not linked into any tree (Linux's `RB_CLEAR_NODE` state).
const RB_DETACHED: u8 = 2;

type Link = *mut VmapArea;

/// One virtual range `[va_start, va_end)`: an intrusive node of a
/// [`VmapAreaRoot`] (Linux's `struct vmap_area`).
///
/// The tree and list links are private; they are visible in GDB as
/// `rb_parent`, `rb_left`, `rb_right`, `rb_color`, `list_prev`, `list_next`.
#[repr(C)]
pub struct VmapArea {
    pub va_start: usize,
    pub va_end: usize,
    rb_parent: Link,
    rb_left: Link,
    rb_right: Link,
    /// Free tree only: the largest `va_end - va_start` in this subtree.
    pub subtree_max_size: usize,
    list_prev: Link,
    list_next: Link,
    /// Opaque link to the kernel's `vm_struct` (busy areas); never touched here.
    pub vm: *mut (),
    /// Lazy-purge chain link for the kernel's use; never touched here.
    pub purge_next: *mut VmapArea,
    rb_color: u8,
}

impl VmapArea {
    /// A detached node for `[start, end)`. Every node must be initialised
    /// with this before it is passed to a tree function.
    pub const fn new(start: usize, end: usize) -> Self {
        Self {
            va_start: start,
            va_end: end,
            rb_parent: ptr::null_mut(),
            rb_left: ptr::null_mut(),
            rb_right: ptr::null_mut(),
            subtree_max_size: 0,
            list_prev: ptr::null_mut(),
            list_next: ptr::null_mut(),
            vm: ptr::null_mut(),
            purge_next: ptr::null_mut(),
            rb_color: RB_DETACHED,
        }
    }

    /// `va_end - va_start` (Linux's `va_size`).
    #[inline(always)]
    pub const fn size(&self) -> usize {
        self.va_end.wrapping_sub(self.va_start)
    }

    /// Is the node linked into a tree?
    pub fn is_linked(&self) -> bool {
        self.rb_color != RB_DETACHED
    }

    /// The next area in address order within the same tree.
    pub fn list_next(&self) -> Option<NonNull<VmapArea>> {
        NonNull::new(self.list_next)
    }

    /// The previous area in address order within the same tree.
    pub fn list_prev(&self) -> Option<NonNull<VmapArea>> {
        NonNull::new(self.list_prev)
    }

    /// Does `[va_start, va_end)` contain `addr`?
    pub const fn contains(&self, addr: usize) -> bool {
        addr >= self.va_start && addr < self.va_end
    }
}

impl fmt::Debug for VmapArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VmapArea({:#x}-{:#x}, max {:#x})",
            self.va_start, self.va_end, self.subtree_max_size
        )
    }
}

/// The object cache `vmap_area` nodes come from (5.10's `vmap_area_cachep`).
///
/// # Safety
///
/// `alloc_vmap_area_node` must return memory that is valid for reads and
/// writes of a [`VmapArea`], suitably aligned, and not used by anything else
/// until it is handed back through `free_vmap_area_node`. The content may be
/// uninitialised: the tree code writes a whole node before using one it
/// allocated. `free_vmap_area_node` receives only nodes that came from the
/// same allocator (or that the caller put into a tree fed by it).
pub unsafe trait VmapAreaAlloc {
    fn alloc_vmap_area_node(&mut self) -> Option<NonNull<VmapArea>>;
    fn free_vmap_area_node(&mut self, va: NonNull<VmapArea>);
}

/// A tree of [`VmapArea`]s plus its address-sorted list (`rb_root` plus
/// `list_head` in Linux). `augmented` roots (the free tree) maintain
/// `subtree_max_size`.
///
/// The root does not own the memory of its nodes: dropping a non-empty root
/// leaks them (empty it with [`VmapAreaRoot::take_all`] first).
pub struct VmapAreaRoot {
    root: Link,
    list_head: Link,
    list_tail: Link,
    count: usize,
    augmented: bool,
}

// SAFETY: a root is the sole owner of the links of its nodes; handing it to
// another CPU (inside a lock) moves that ownership along.
unsafe impl Send for VmapAreaRoot {}

impl VmapAreaRoot {
    /// An empty tree; `augmented` selects the free-tree bookkeeping.
    pub const fn new(augmented: bool) -> Self {
        Self {
            root: ptr::null_mut(),
            list_head: ptr::null_mut(),
            list_tail: ptr::null_mut(),
            count: 0,
            augmented,
        }
    }

    /// An empty busy tree (`vmap_area_root`) or purge tree.
    pub const fn new_busy() -> Self {
        Self::new(false)
    }

    /// An empty free tree (`free_vmap_area_root`).
    pub const fn new_free() -> Self {
        Self::new(true)
    }

    pub const fn is_augmented(&self) -> bool {
        self.augmented
    }

    /// Number of areas in the tree.
    pub const fn len(&self) -> usize {
        self.count
    }

    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The lowest area.
    pub fn first(&self) -> Option<NonNull<VmapArea>> {
        NonNull::new(self.list_head)
    }

    /// The highest area.
    pub fn last(&self) -> Option<NonNull<VmapArea>> {
        NonNull::new(self.list_tail)
    }

    /// The areas in address order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            next: self.list_head,
            _root: PhantomData,
        }
    }

    /// Free tree: the largest hole (0 if empty or not augmented).
    pub fn max_free_size(&self) -> usize {
        if self.root.is_null() || !self.augmented {
            0
        } else {
            // SAFETY: a non-null root points to a live node of this tree.
            unsafe { (*self.root).subtree_max_size }
        }
    }

    /// The area containing `addr`, in O(log n).
    pub fn find(&self, addr: usize) -> Option<NonNull<VmapArea>> {
        NonNull::new(__find_vmap_area(self, addr))
    }

    /// The area that starts exactly at `start`.
    pub fn find_exact(&self, start: usize) -> Option<NonNull<VmapArea>> {
        self.find(start).filter(|va| {
            // SAFETY: nodes returned by the search are live nodes of this tree.
            unsafe { va.as_ref().va_start == start }
        })
    }

    /// Height of the tree (0 when empty): at most `2 * log2(len + 1)`.
    pub fn height(&self) -> usize {
        unsafe fn h(n: Link) -> usize {
            unsafe {
                if n.is_null() {
                    0
                } else {
                    1 + h((*n).rb_left).max(h((*n).rb_right))
                }
            }
        }
        // SAFETY: every link reachable from the root points to a live node.
        unsafe { h(self.root) }
    }

    /// Empty the tree and hand back all its nodes in address order, each
    /// detached (5.10's `list_replace_init` of the purge list). The caller
    /// owns every yielded node: it can merge it into another tree or free it.
    /// Nodes not consumed because the iterator is dropped early are leaked.
    pub fn take_all(&mut self) -> VmapAreaDrain {
        let head = self.list_head;
        self.root = ptr::null_mut();
        self.list_head = ptr::null_mut();
        self.list_tail = ptr::null_mut();
        self.count = 0;
        VmapAreaDrain { next: head }
    }

    // ---- red-black tree core ----------------------------------------------
    //
    // Safety of the private helpers below: every non-null pointer they are
    // given or follow is a live node linked into `self` (unless the helper
    // says it takes a detached node), and nothing else mutates the tree
    // meanwhile (the caller holds the lock that guards the root).

    #[inline(always)]
    unsafe fn change_child(&mut self, parent: Link, old: Link, new: Link) {
        unsafe {
            if parent.is_null() {
                self.root = new;
            } else if (*parent).rb_left == old {
                (*parent).rb_left = new;
            } else {
                (*parent).rb_right = new;
            }
        }
    }

    /// `x` goes down-left, its right child `y` takes its place.
    unsafe fn rotate_left(&mut self, x: Link) {
        unsafe {
            let y = (*x).rb_right;
            let inner = (*y).rb_left;
            (*x).rb_right = inner;
            if !inner.is_null() {
                (*inner).rb_parent = x;
            }
            let p = (*x).rb_parent;
            (*y).rb_parent = p;
            self.change_child(p, x, y);
            (*y).rb_left = x;
            (*x).rb_parent = y;
            if self.augmented {
                // y now spans exactly the nodes x spanned before.
                (*y).subtree_max_size = (*x).subtree_max_size;
                (*x).subtree_max_size = compute_subtree_max_size(x);
            }
        }
    }

    /// `x` goes down-right, its left child `y` takes its place.
    unsafe fn rotate_right(&mut self, x: Link) {
        unsafe {
            let y = (*x).rb_left;
            let inner = (*y).rb_right;
            (*x).rb_left = inner;
            if !inner.is_null() {
                (*inner).rb_parent = x;
            }
            let p = (*x).rb_parent;
            (*y).rb_parent = p;
            self.change_child(p, x, y);
            (*y).rb_right = x;
            (*x).rb_parent = y;
            if self.augmented {
                (*y).subtree_max_size = (*x).subtree_max_size;
                (*x).subtree_max_size = compute_subtree_max_size(x);
            }
        }
    }

    /// Where a node for `[start, end)` would hang: `(parent, as_left_child)`,
    /// or the node it overlaps (Linux's `find_va_links`).
    #[inline(always)]
    unsafe fn find_va_links(&self, start: usize, end: usize) -> Result<(Link, bool), Link> {
        unsafe {
            let mut n = self.root;
            let mut parent = ptr::null_mut();
            let mut left = false;
            while !n.is_null() {
                parent = n;
                if end <= (*n).va_start {
                    left = true;
                    n = (*n).rb_left;
                } else if start >= (*n).va_end {
                    left = false;
                    n = (*n).rb_right;
                } else {
                    return Err(n);
                }
            }
            Ok((parent, left))
        }
    }

    /// Hang the detached `va` under `parent` (found by `find_va_links` with
    /// no change to the tree since), link it into the list next to its
    /// parent, and rebalance (Linux's `link_va`).
    unsafe fn link_va(&mut self, va: Link, parent: Link, as_left: bool) {
        unsafe {
            (*va).rb_parent = parent;
            (*va).rb_left = ptr::null_mut();
            (*va).rb_right = ptr::null_mut();
            (*va).rb_color = RB_RED;
            if parent.is_null() {
                self.root = va;
                (*va).list_prev = ptr::null_mut();
                (*va).list_next = ptr::null_mut();
                self.list_head = va;
                self.list_tail = va;
            } else if as_left {
                // In-order predecessor of the parent: insert before it.
                (*parent).rb_left = va;
                let prev = (*parent).list_prev;
                (*va).list_prev = prev;
                (*va).list_next = parent;
                if prev.is_null() {
                    self.list_head = va;
                } else {
                    (*prev).list_next = va;
                }
                (*parent).list_prev = va;
            } else {
                (*parent).rb_right = va;
                let next = (*parent).list_next;
                (*va).list_prev = parent;
                (*va).list_next = next;
                if next.is_null() {
                    self.list_tail = va;
                } else {
                    (*next).list_prev = va;
                }
                (*parent).list_next = va;
            }
            self.count += 1;
            if self.augmented {
                // Make the maxima on the path include the new leaf first, so the
                // rotations of the rebalance start from correct values.
                let size = (*va).size();
                (*va).subtree_max_size = size;
                let mut p = parent;
                while !p.is_null() && (*p).subtree_max_size < size {
                    (*p).subtree_max_size = size;
                    p = (*p).rb_parent;
                }
            }
            self.insert_fixup(va);
        }
    }

    unsafe fn insert_fixup(&mut self, mut node: Link) {
        unsafe {
            loop {
                let mut parent = (*node).rb_parent;
                if parent.is_null() {
                    (*node).rb_color = RB_BLACK;
                    return;
                }
                if (*parent).rb_color == RB_BLACK {
                    return;
                }
                // A red parent is never the root, so the grandparent exists.
                let gparent = (*parent).rb_parent;
                if parent == (*gparent).rb_left {
                    let uncle = (*gparent).rb_right;
                    if is_red(uncle) {
                        (*parent).rb_color = RB_BLACK;
                        (*uncle).rb_color = RB_BLACK;
                        (*gparent).rb_color = RB_RED;
                        node = gparent;
                        continue;
                    }
                    if node == (*parent).rb_right {
                        self.rotate_left(parent);
                        parent = node;
                    }
                    (*parent).rb_color = RB_BLACK;
                    (*gparent).rb_color = RB_RED;
                    self.rotate_right(gparent);
                    return;
                } else {
                    let uncle = (*gparent).rb_left;
                    if is_red(uncle) {
                        (*parent).rb_color = RB_BLACK;
                        (*uncle).rb_color = RB_BLACK;
                        (*gparent).rb_color = RB_RED;
                        node = gparent;
                        continue;
                    }
                    if node == (*parent).rb_left {
                        self.rotate_right(parent);
                        parent = node;
                    }
                    (*parent).rb_color = RB_BLACK;
                    (*gparent).rb_color = RB_RED;
                    self.rotate_left(gparent);
                    return;
                }
            }
        }
    }

    /// Remove `z` from the tree (not the list), keeping the augmentation.
    unsafe fn erase(&mut self, z: Link) {
        unsafe {
            let zl = (*z).rb_left;
            let zr = (*z).rb_right;
            // `child` takes the place of the node that physically left the tree
            // and `parent` is its new parent: where a black deficit may start.
            let child;
            let parent;
            let removed_black;
            if zl.is_null() || zr.is_null() {
                let c = if zl.is_null() { zr } else { zl };
                let p = (*z).rb_parent;
                self.change_child(p, z, c);
                if !c.is_null() {
                    (*c).rb_parent = p;
                }
                removed_black = (*z).rb_color == RB_BLACK;
                child = c;
                parent = p;
                if self.augmented {
                    propagate(p, ptr::null_mut());
                }
            } else {
                // Two children: the in-order successor `s` moves into z's place.
                let mut s = zr;
                while !(*s).rb_left.is_null() {
                    s = (*s).rb_left;
                }
                removed_black = (*s).rb_color == RB_BLACK;
                child = (*s).rb_right;
                if s == zr {
                    parent = s;
                } else {
                    let sp = (*s).rb_parent;
                    (*sp).rb_left = child;
                    if !child.is_null() {
                        (*child).rb_parent = sp;
                    }
                    (*s).rb_right = zr;
                    (*zr).rb_parent = s;
                    parent = sp;
                }
                (*s).rb_left = zl;
                (*zl).rb_parent = s;
                let p = (*z).rb_parent;
                self.change_child(p, z, s);
                (*s).rb_parent = p;
                (*s).rb_color = (*z).rb_color;
                if self.augmented {
                    // Nodes between s's old spot and s lost s; s itself now spans
                    // z's subtree minus z. Fix the former, then s and upwards.
                    (*s).subtree_max_size = (*z).subtree_max_size;
                    propagate(parent, s);
                    propagate(s, ptr::null_mut());
                }
            }
            if removed_black {
                self.erase_fixup(child, parent);
            }
        }
    }

    unsafe fn erase_fixup(&mut self, mut node: Link, mut parent: Link) {
        unsafe {
            while node != self.root && !is_red(node) {
                // `node` carries an extra black; its sibling exists because the
                // other side has a black height of at least one.
                if node == (*parent).rb_left {
                    let mut sib = (*parent).rb_right;
                    if is_red(sib) {
                        (*sib).rb_color = RB_BLACK;
                        (*parent).rb_color = RB_RED;
                        self.rotate_left(parent);
                        sib = (*parent).rb_right;
                    }
                    if !is_red((*sib).rb_left) && !is_red((*sib).rb_right) {
                        (*sib).rb_color = RB_RED;
                        node = parent;
                        parent = (*node).rb_parent;
                    } else {
                        if !is_red((*sib).rb_right) {
                            (*(*sib).rb_left).rb_color = RB_BLACK;
                            (*sib).rb_color = RB_RED;
                            self.rotate_right(sib);
                            sib = (*parent).rb_right;
                        }
                        (*sib).rb_color = (*parent).rb_color;
                        (*parent).rb_color = RB_BLACK;
                        (*(*sib).rb_right).rb_color = RB_BLACK;
                        self.rotate_left(parent);
                        node = self.root;
                        break;
                    }
                } else {
                    let mut sib = (*parent).rb_left;
                    if is_red(sib) {
                        (*sib).rb_color = RB_BLACK;
                        (*parent).rb_color = RB_RED;
                        self.rotate_right(parent);
                        sib = (*parent).rb_left;
                    }
                    if !is_red((*sib).rb_left) && !is_red((*sib).rb_right) {
                        (*sib).rb_color = RB_RED;
                        node = parent;
                        parent = (*node).rb_parent;
                    } else {
                        if !is_red((*sib).rb_left) {
                            (*(*sib).rb_right).rb_color = RB_BLACK;
                            (*sib).rb_color = RB_RED;
                            self.rotate_left(sib);
                            sib = (*parent).rb_left;
                        }
                        (*sib).rb_color = (*parent).rb_color;
                        (*parent).rb_color = RB_BLACK;
                        (*(*sib).rb_left).rb_color = RB_BLACK;
                        self.rotate_right(parent);
                        node = self.root;
                        break;
                    }
                }
            }
            if !node.is_null() {
                (*node).rb_color = RB_BLACK;
            }
        }
    }

    /// Remove a linked `va` from tree and list and mark it detached.
    unsafe fn unlink(&mut self, va: Link) {
        unsafe {
            self.erase(va);
            let prev = (*va).list_prev;
            let next = (*va).list_next;
            if prev.is_null() {
                self.list_head = next;
            } else {
                (*prev).list_next = next;
            }
            if next.is_null() {
                self.list_tail = prev;
            } else {
                (*next).list_prev = prev;
            }
            self.count -= 1;
            detach(va);
        }
    }

    /// Link the detached `va` as the in-order predecessor of `succ`.
    unsafe fn link_before(&mut self, va: Link, succ: Link) {
        unsafe {
            let left = (*succ).rb_left;
            if left.is_null() {
                self.link_va(va, succ, true);
            } else {
                let mut n = left;
                while !(*n).rb_right.is_null() {
                    n = (*n).rb_right;
                }
                self.link_va(va, n, false);
            }
        }
    }

    #[inline(always)]
    unsafe fn propagate_from(&self, va: Link) {
        unsafe {
            if self.augmented {
                augment_tree_propagate_from(NonNull::new_unchecked(va));
            }
        }
    }
}

/// Address-order iterator over a [`VmapAreaRoot`].
pub struct Iter<'a> {
    next: Link,
    _root: PhantomData<&'a VmapAreaRoot>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a VmapArea;

    fn next(&mut self) -> Option<&'a VmapArea> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: list links of a borrowed root point to its live nodes.
        unsafe {
            let va = &*self.next;
            self.next = va.list_next;
            Some(va)
        }
    }
}

/// The nodes of an emptied tree, detached one by one as they are yielded
/// (see [`VmapAreaRoot::take_all`]).
pub struct VmapAreaDrain {
    next: Link,
}

impl Iterator for VmapAreaDrain {
    type Item = NonNull<VmapArea>;

    fn next(&mut self) -> Option<NonNull<VmapArea>> {
        let va = NonNull::new(self.next)?;
        // SAFETY: the nodes of the taken list stay valid until yielded; the
        // successor is read before the caller gets (and may free) the node.
        unsafe {
            self.next = (*va.as_ptr()).list_next;
            detach(va.as_ptr());
        }
        Some(va)
    }
}

#[inline(always)]
unsafe fn is_red(n: Link) -> bool {
    unsafe { !n.is_null() && (*n).rb_color == RB_RED }
}

#[inline(always)]
unsafe fn detach(va: Link) {
    unsafe {
        (*va).rb_parent = ptr::null_mut();
        (*va).rb_left = ptr::null_mut();
        (*va).rb_right = ptr::null_mut();
        (*va).list_prev = ptr::null_mut();
        (*va).list_next = ptr::null_mut();
        (*va).rb_color = RB_DETACHED;
    }
}

#[inline(always)]
unsafe fn get_subtree_max_size(n: Link) -> usize {
    unsafe { if n.is_null() { 0 } else { (*n).subtree_max_size } }
}

/// max(own size, children's maxima) from the children's stored values.
#[inline(always)]
unsafe fn compute_subtree_max_size(n: Link) -> usize {
    unsafe {
        (*n).size()
            .max(get_subtree_max_size((*n).rb_left))
            .max(get_subtree_max_size((*n).rb_right))
    }
}

/// Recompute maxima from `n` towards the root, stopping at `stop` or at the
/// first node whose value does not change (its ancestors cannot change then).
#[inline(always)]
unsafe fn propagate(mut n: Link, stop: Link) {
    unsafe {
        while !n.is_null() && n != stop {
            let m = compute_subtree_max_size(n);
            if m == (*n).subtree_max_size {
                break;
            }
            (*n).subtree_max_size = m;
            n = (*n).rb_parent;
        }
    }
}

// ---- Linux's functions ------------------------------------------------------

/// Restore `subtree_max_size` from `va` up after `va` was resized in place
/// (shrunk by an allocation, grown by a merge).
///
/// # Safety
///
/// `va` is a live node of an augmented (free) tree.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn augment_tree_propagate_from(va: NonNull<VmapArea>) {
    unsafe {
        propagate(va.as_ptr(), ptr::null_mut());
    }
}

/// The area of `root` containing `addr`, or null (Linux's `__find_vmap_area`;
/// `vfree` uses it on the busy tree).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __find_vmap_area(root: &VmapAreaRoot, addr: usize) -> *mut VmapArea {
    let mut n = root.root;
    // SAFETY: links reachable from a root point to its live nodes.
    unsafe {
        while !n.is_null() {
            if addr < (*n).va_start {
                n = (*n).rb_left;
            } else if addr >= (*n).va_end {
                n = (*n).rb_right;
            } else {
                return n;
            }
        }
    }
    ptr::null_mut()
}

/// Insert the detached `va` into `root` and its list (busy tree; works on any
/// tree). Fails without touching anything if the range is empty or overlaps
/// an area already in the tree.
///
/// # Safety
///
/// `va` points to a node initialised with [`VmapArea::new`] that is in no
/// tree and stays valid (and otherwise untouched) while it is in `root`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn insert_vmap_area(root: &mut VmapAreaRoot, va: NonNull<VmapArea>) -> Result<(), VmapError> {
    unsafe {
        let v = va.as_ptr();
        let (start, end) = ((*v).va_start, (*v).va_end);
        if start >= end {
            return Err(VmapError::BadRange { start, end });
        }
        debug_assert!(
            !(*v).is_linked(),
            "insert_vmap_area: {:#x} is already in a tree",
            v as usize
        );
        match root.find_va_links(start, end) {
            Ok((parent, as_left)) => {
                root.link_va(v, parent, as_left);
                Ok(())
            }
            Err(other) => Err(VmapError::Overlap {
                start,
                end,
                other_start: (*other).va_start,
                other_end: (*other).va_end,
            }),
        }
    }
}

/// Remove `va` from `root` and its list; the node is detached afterwards and
/// belongs to the caller again. Returns false (and does nothing) if `va` is
/// not linked (Linux WARNs on that).
///
/// # Safety
///
/// `va` is a valid node; if it is linked, it is linked into `root`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn unlink_va(root: &mut VmapAreaRoot, va: NonNull<VmapArea>) -> bool {
    unsafe {
        if !(*va.as_ptr()).is_linked() {
            return false;
        }
        root.unlink(va.as_ptr());
        true
    }
}

/// Put the freed range `va` into `root`, merging it with the previous and/or
/// next area when they touch; absorbed nodes (including `va` itself) go back
/// to `alloc`. Returns the node that now holds the range. Works on the free
/// tree (augmented) and on a purge tree.
///
/// On overlap with an area already in `root` nothing changes and `va` stays
/// with the caller (Linux WARNs and returns NULL).
///
/// # Safety
///
/// As for [`insert_vmap_area`]; additionally `va` must be freeable by `alloc`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn merge_or_add_vmap_area(
    root: &mut VmapAreaRoot,
    va: NonNull<VmapArea>,
    alloc: &mut dyn VmapAreaAlloc,
) -> Result<NonNull<VmapArea>, VmapError> {
    unsafe {
        let v = va.as_ptr();
        let (start, end) = ((*v).va_start, (*v).va_end);
        if start >= end {
            return Err(VmapError::BadRange { start, end });
        }
        debug_assert!(
            !(*v).is_linked(),
            "merge_or_add_vmap_area: {:#x} is already in a tree",
            v as usize
        );
        let (parent, as_left) = match root.find_va_links(start, end) {
            Ok(l) => l,
            Err(other) => {
                return Err(VmapError::Overlap {
                    start,
                    end,
                    other_start: (*other).va_start,
                    other_end: (*other).va_end,
                });
            }
        };
        // The list neighbours of the insertion point, found from the descent.
        let (prev, next) = if parent.is_null() {
            (ptr::null_mut(), ptr::null_mut())
        } else if as_left {
            ((*parent).list_prev, parent)
        } else {
            (parent, (*parent).list_next)
        };
        let with_next = !next.is_null() && (*next).va_start == end;
        let with_prev = !prev.is_null() && (*prev).va_end == start;

        let holder = match (with_prev, with_next) {
            (true, true) => {
                //  |<--prev-->|<--va-->|<--next-->|   prev swallows both.
                // Remove next while every size in the tree is still accurate.
                let new_end = (*next).va_end;
                root.unlink(next);
                alloc.free_vmap_area_node(NonNull::new_unchecked(next));
                (*prev).va_end = new_end;
                root.propagate_from(prev);
                alloc.free_vmap_area_node(va);
                prev
            }
            (true, false) => {
                (*prev).va_end = end;
                root.propagate_from(prev);
                alloc.free_vmap_area_node(va);
                prev
            }
            (false, true) => {
                (*next).va_start = start;
                root.propagate_from(next);
                alloc.free_vmap_area_node(va);
                next
            }
            (false, false) => {
                root.link_va(v, parent, as_left);
                v
            }
        };
        Ok(NonNull::new_unchecked(holder))
    }
}

/// Where an aligned block of `size` bytes can start in `va` at or after
/// `vstart`, ending at or before `vend` (Linux's `is_within_this_va`).
#[inline(always)]
fn va_fit_start(va: &VmapArea, size: usize, align: usize, vstart: usize, vend: usize) -> Option<usize> {
    let base = va.va_start.max(vstart);
    let nva = base.checked_add(align - 1)? & !(align - 1);
    let nva_end = nva.checked_add(size)?;
    if nva_end <= va.va_end && nva_end <= vend {
        Some(nva)
    } else {
        None
    }
}

/// The smallest hole size that surely holds an aligned block of `size`
/// bytes in a page-granular tree (see the module docs).
#[inline(always)]
fn search_length(size: usize, align: usize) -> Option<usize> {
    size.checked_add(align - align.min(PAGE_SIZE))
}

enum Probe {
    Fits,
    TooSmall,
    /// Neither this area nor any later one can end at or before `vend`.
    PastEnd,
}

#[inline(always)]
unsafe fn probe(n: Link, size: usize, align: usize, vstart: usize, vend: usize, length: usize) -> Probe {
    unsafe {
        let va = &*n;
        if va.va_start.max(vstart).checked_add(size).is_none_or(|e| e > vend) {
            return Probe::PastEnd;
        }
        if va.size() >= length && va_fit_start(va, size, align, vstart, vend).is_some() {
            Probe::Fits
        } else {
            Probe::TooSmall
        }
    }
}

/// The lowest area of size >= `length` in which the block fits, in
/// O(log n): walk down-left while the left subtree holds a big-enough area
/// above `vstart`, examine the node, go right if that subtree can help, and
/// otherwise climb back to the nearest ancestor not examined yet.
unsafe fn lowest_match(
    root: &VmapAreaRoot,
    size: usize,
    align: usize,
    vstart: usize,
    vend: usize,
    length: usize,
) -> Link {
    unsafe {
        let mut node = root.root;
        if node.is_null() || (*node).subtree_max_size < length {
            return ptr::null_mut();
        }
        'descend: loop {
            loop {
                let left = (*node).rb_left;
                // Areas left of `node` end at or before its start: useless when
                // vstart is not below that start.
                if vstart < (*node).va_start && get_subtree_max_size(left) >= length {
                    node = left;
                } else {
                    break;
                }
            }
            match probe(node, size, align, vstart, vend, length) {
                Probe::Fits => return node,
                Probe::PastEnd => return ptr::null_mut(),
                Probe::TooSmall => {}
            }
            if get_subtree_max_size((*node).rb_right) >= length {
                node = (*node).rb_right;
                continue 'descend;
            }
            // Everything at or below `node` is ruled out: back up to the first
            // ancestor entered from its left, which is the next one in order.
            loop {
                let parent = (*node).rb_parent;
                if parent.is_null() {
                    return ptr::null_mut();
                }
                let from_left = (*parent).rb_left == node;
                node = parent;
                if !from_left {
                    continue;
                }
                match probe(node, size, align, vstart, vend, length) {
                    Probe::Fits => return node,
                    Probe::PastEnd => return ptr::null_mut(),
                    Probe::TooSmall => {}
                }
                if get_subtree_max_size((*node).rb_right) >= length {
                    node = (*node).rb_right;
                    continue 'descend;
                }
            }
        }
    }
}

/// The lowest-address free area that can hold `size` bytes aligned to
/// `align` (a power of two) starting at or after `vstart` and ending by
/// `vend`, or null. Areas large enough to fit the block at any page-aligned
/// position win over lower, smaller ones that fit only by luck (see the
/// module docs): the search tries the guaranteed-fit length first, then
/// the exact size. Null on a non-augmented tree.
///
/// Linux 5.10's find_vmap_lowest_match has no `vend` (its caller checks the
/// end afterwards); this one stops at `vend`, so it is the search
/// `__alloc_vmap_area` runs, under Linux's name: `break
/// find_vmap_lowest_match` in GDB stops on the allocation path, in a frame
/// of that name. Pass `usize::MAX` for no bound.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn find_vmap_lowest_match(
    root: &VmapAreaRoot,
    size: usize,
    align: usize,
    vstart: usize,
    vend: usize,
) -> *mut VmapArea {
    if !root.augmented || size == 0 || !align.is_power_of_two() {
        return ptr::null_mut();
    }
    // SAFETY: links reachable from a root point to its live nodes.
    unsafe {
        if let Some(length) = search_length(size, align) {
            let va = lowest_match(root, size, align, vstart, vend, length);
            if !va.is_null() || length == size {
                return va;
            }
        }
        lowest_match(root, size, align, vstart, vend, size)
    }
}

/// How a block `[nva_start, nva_start + size)` sits in a free area.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitType {
    /// Not inside the area (or empty).
    NothingFit = 0,
    /// The block is the whole area.
    FlFitType = 1,
    /// The block starts the area: the area keeps its right part.
    LeFitType = 2,
    /// The block ends the area: the area keeps its left part.
    ReFitType = 3,
    /// Strictly inside: the area splits in two.
    NeFitType = 4,
}

#[unsafe(no_mangle)]
#[inline(never)]
pub fn classify_va_fit_type(va: &VmapArea, nva_start: usize, size: usize) -> FitType {
    let nva_end = match nva_start.checked_add(size) {
        Some(e) if size != 0 => e,
        _ => return FitType::NothingFit,
    };
    if nva_start < va.va_start || nva_end > va.va_end {
        return FitType::NothingFit;
    }
    match (nva_start == va.va_start, nva_end == va.va_end) {
        (true, true) => FitType::FlFitType,
        (true, false) => FitType::LeFitType,
        (false, true) => FitType::ReFitType,
        (false, false) => FitType::NeFitType,
    }
}

/// Carve `[nva_start, nva_start + size)` out of the free area `va`:
///
/// ```text
///  FL: |<======va=====>|     node unlinked and freed
///  LE: |<=nva=>|<-va-->|     va_start moves up
///  RE: |<-va-->|<=nva=>|     va_end moves down
///  NE: |<lva>|<=nva=>|<va>|  one new node (from `alloc`) for the left part
/// ```
///
/// `fit` must be what [`classify_va_fit_type`] says (checked; a mismatch is
/// `BadRange`). If the NE node cannot be allocated the result is `NoMemory`
/// and nothing has changed.
///
/// # Safety
///
/// `va` is a live node of `root`, whose nodes are freeable by `alloc`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn adjust_va_to_fit_type(
    root: &mut VmapAreaRoot,
    va: NonNull<VmapArea>,
    nva_start: usize,
    size: usize,
    fit: FitType,
    alloc: &mut dyn VmapAreaAlloc,
) -> Result<(), VmapError> {
    unsafe {
        let v = va.as_ptr();
        if fit == FitType::NothingFit || classify_va_fit_type(&*v, nva_start, size) != fit {
            return Err(VmapError::BadRange {
                start: nva_start,
                end: nva_start.wrapping_add(size),
            });
        }
        match fit {
            FitType::FlFitType => {
                root.unlink(v);
                alloc.free_vmap_area_node(va);
            }
            FitType::LeFitType => {
                (*v).va_start = nva_start + size;
                root.propagate_from(v);
            }
            FitType::ReFitType => {
                (*v).va_end = nva_start;
                root.propagate_from(v);
            }
            FitType::NeFitType => {
                let lva = alloc.alloc_vmap_area_node().ok_or(VmapError::NoMemory)?;
                lva.as_ptr().write(VmapArea::new((*v).va_start, nva_start));
                (*v).va_start = nva_start + size;
                root.propagate_from(v);
                // The left remainder is va's in-order predecessor.
                root.link_before(lva.as_ptr(), v);
            }
            FitType::NothingFit => unreachable!(),
        }
        Ok(())
    }
}

/// Linux's `__alloc_vmap_area`: the start address of `size` bytes taken from
/// the free tree, or `vend` on any failure (Linux's convention; the free
/// tree is then unchanged). A thin shell over [`try_alloc_vmap_area_range`]
/// that returns an integer, so that GDB's `finish` can print it (a
/// `Result` this large is returned through memory, which GDB cannot find
/// again after the return).
#[allow(non_snake_case)]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __alloc_vmap_area(
    root: &mut VmapAreaRoot,
    size: usize,
    align: usize,
    vstart: usize,
    vend: usize,
    alloc: &mut dyn VmapAreaAlloc,
) -> usize {
    try_alloc_vmap_area_range(root, size, align, vstart, vend, alloc).unwrap_or(vend)
}

/// Take `size` bytes aligned to `align` from the free tree `root`, inside
/// `[vstart, vend)`, at the lowest address [`find_vmap_lowest_match`] allows.
/// Returns the start address. `NoMemory` only when a split needed a node and
/// `alloc` had none (free tree unchanged).
pub fn try_alloc_vmap_area_range(
    root: &mut VmapAreaRoot,
    size: usize,
    align: usize,
    vstart: usize,
    vend: usize,
    alloc: &mut dyn VmapAreaAlloc,
) -> Result<usize, VmapError> {
    if size == 0 || !align.is_power_of_two() {
        return Err(VmapError::BadRequest { size, align });
    }
    let va = find_vmap_lowest_match(root, size, align, vstart, vend);
    if va.is_null() {
        return Err(VmapError::NoSpace { size, align });
    }
    // SAFETY: `va` is a live node of `root`; the nodes of a free tree come
    // from the caller's node allocator.
    unsafe {
        let nva_start = match va_fit_start(&*va, size, align, vstart, vend) {
            Some(s) => s,
            None => return Err(VmapError::NoSpace { size, align }),
        };
        let fit = classify_va_fit_type(&*va, nva_start, size);
        adjust_va_to_fit_type(root, NonNull::new_unchecked(va), nva_start, size, fit, alloc)?;
        Ok(nva_start)
    }
}

/// Why a vmap tree operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmapError {
    /// No free range fits (the caller may purge lazily-freed areas and retry).
    NoSpace { size: usize, align: usize },
    /// The node cache had no object for a split.
    NoMemory,
    /// Size zero or alignment not a power of two.
    BadRequest { size: usize, align: usize },
    /// The range is empty, or not inside the area it was to be cut from.
    BadRange { start: usize, end: usize },
    /// The range overlaps an area already in the tree.
    Overlap {
        start: usize,
        end: usize,
        other_start: usize,
        other_end: usize,
    },
}

impl fmt::Display for VmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoSpace { size, align } => {
                write!(f, "no free vmap range for {size:#x} bytes aligned to {align:#x}")
            }
            Self::NoMemory => write!(f, "no memory for a vmap_area node"),
            Self::BadRequest { size, align } => write!(
                f,
                "bad vmap request: size {size:#x}, align {align:#x} (need size > 0, align a power of two)"
            ),
            Self::BadRange { start, end } => write!(f, "bad vmap range {start:#x}-{end:#x}"),
            Self::Overlap {
                start,
                end,
                other_start,
                other_end,
            } => write!(
                f,
                "vmap range {start:#x}-{end:#x} overlaps {other_start:#x}-{other_end:#x}"
            ),
        }
    }
}

impl core::error::Error for VmapError {}

// ---- debug checks (Linux's DEBUG_AUGMENT_*_CHECK) ---------------------------

/// A broken invariant, naming the node(s) by address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvariantError {
    /// A node's `rb_parent` is not the node it hangs from.
    ParentLink {
        node: usize,
        parent: usize,
        expected: usize,
    },
    RootNotBlack {
        node: usize,
    },
    /// A node in the tree is marked detached or has a garbage colour.
    BadColor {
        node: usize,
        color: u8,
    },
    RedRed {
        node: usize,
        parent: usize,
    },
    BlackHeight {
        node: usize,
        left: usize,
        right: usize,
    },
    /// Deeper than any balanced tree of this size: corrupt links or a cycle.
    TooDeep {
        node: usize,
        depth: usize,
    },
    EmptyRange {
        node: usize,
        start: usize,
        end: usize,
    },
    /// In-order successor does not start after its predecessor.
    Order {
        prev: usize,
        prev_start: usize,
        node: usize,
        start: usize,
    },
    Overlap {
        prev: usize,
        prev_end: usize,
        node: usize,
        start: usize,
    },
    /// The list disagrees with the in-order walk at position `index`.
    ListOrder {
        index: usize,
        list_node: usize,
        tree_node: usize,
    },
    ListBackLink {
        node: usize,
        list_prev: usize,
        expected: usize,
    },
    ListTail {
        list_tail: usize,
        expected: usize,
    },
    Count {
        counted: usize,
        recorded: usize,
    },
    /// DEBUG_AUGMENT_PROPAGATE_CHECK.
    SubtreeMax {
        node: usize,
        start: usize,
        end: usize,
        stored: usize,
        computed: usize,
    },
    /// DEBUG_AUGMENT_LOWEST_MATCH_CHECK.
    LowestMatch {
        size: usize,
        align: usize,
        vstart: usize,
        tree: usize,
        linear: usize,
    },
    /// check_coverage: nothing covers `[from, to)`.
    CoverageGap {
        from: usize,
        to: usize,
    },
    /// check_coverage: `[start, end)` from `source` overlaps what is covered up to `covered_to`.
    CoverageOverlap {
        start: usize,
        end: usize,
        covered_to: usize,
        source: usize,
    },
    /// check_coverage: a range lies outside `[lo, hi)` or is empty.
    CoverageBounds {
        start: usize,
        end: usize,
        lo: usize,
        hi: usize,
        source: usize,
    },
}

impl fmt::Display for InvariantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ParentLink { node, parent, expected } => write!(
                f,
                "node {node:#x}: rb_parent is {parent:#x}, but it hangs from {expected:#x}"
            ),
            Self::RootNotBlack { node } => write!(f, "root {node:#x} is not black"),
            Self::BadColor { node, color } => write!(f, "node {node:#x} in the tree has colour {color}"),
            Self::RedRed { node, parent } => write!(f, "red node {node:#x} has red parent {parent:#x}"),
            Self::BlackHeight { node, left, right } => write!(
                f,
                "node {node:#x}: black height {left} on the left, {right} on the right"
            ),
            Self::TooDeep { node, depth } => write!(f, "node {node:#x} at depth {depth}: corrupt links or a cycle"),
            Self::EmptyRange { node, start, end } => write!(f, "node {node:#x}: empty range {start:#x}-{end:#x}"),
            Self::Order {
                prev,
                prev_start,
                node,
                start,
            } => write!(
                f,
                "node {node:#x} (start {start:#x}) follows {prev:#x} (start {prev_start:#x}) in order"
            ),
            Self::Overlap {
                prev,
                prev_end,
                node,
                start,
            } => write!(
                f,
                "node {node:#x} starts at {start:#x} before {prev:#x} ends at {prev_end:#x}"
            ),
            Self::ListOrder {
                index,
                list_node,
                tree_node,
            } => write!(
                f,
                "list position {index} holds {list_node:#x}, in-order walk has {tree_node:#x}"
            ),
            Self::ListBackLink {
                node,
                list_prev,
                expected,
            } => write!(f, "node {node:#x}: list_prev is {list_prev:#x}, expected {expected:#x}"),
            Self::ListTail { list_tail, expected } => {
                write!(f, "list tail is {list_tail:#x}, expected {expected:#x}")
            }
            Self::Count { counted, recorded } => write!(f, "tree holds {counted} nodes, count says {recorded}"),
            Self::SubtreeMax {
                node,
                start,
                end,
                stored,
                computed,
            } => write!(
                f,
                "tree is corrupted: node {node:#x} ({start:#x}-{end:#x}) subtree_max_size {stored:#x}, computed {computed:#x}"
            ),
            Self::LowestMatch {
                size,
                align,
                vstart,
                tree,
                linear,
            } => write!(
                f,
                "not lowest: size {size:#x} align {align:#x} vstart {vstart:#x}: tree {tree:#x}, linear {linear:#x}"
            ),
            Self::CoverageGap { from, to } => write!(f, "nothing covers {from:#x}-{to:#x}"),
            Self::CoverageOverlap {
                start,
                end,
                covered_to,
                source,
            } => write!(
                f,
                "range {start:#x}-{end:#x} (source {source}) overlaps coverage up to {covered_to:#x}"
            ),
            Self::CoverageBounds {
                start,
                end,
                lo,
                hi,
                source,
            } => write!(
                f,
                "range {start:#x}-{end:#x} (source {source}) is empty or outside {lo:#x}-{hi:#x}"
            ),
        }
    }
}

impl core::error::Error for InvariantError {}

struct Walk {
    augmented: bool,
    recorded: usize,
    visited: usize,
    prev: Link,
    cursor: Link,
}

const MAX_CHECK_DEPTH: usize = 2 * usize::BITS as usize + 2;

/// Returns the black height of the subtree at `n`.
unsafe fn check_subtree(w: &mut Walk, n: Link, parent: Link, depth: usize) -> Result<usize, InvariantError> {
    unsafe {
        if n.is_null() {
            return Ok(1);
        }
        let addr = n as usize;
        if depth > MAX_CHECK_DEPTH || w.visited > w.recorded {
            return Err(InvariantError::TooDeep { node: addr, depth });
        }
        let va = &*n;
        if va.rb_parent != parent {
            return Err(InvariantError::ParentLink {
                node: addr,
                parent: va.rb_parent as usize,
                expected: parent as usize,
            });
        }
        if va.rb_color != RB_RED && va.rb_color != RB_BLACK {
            return Err(InvariantError::BadColor {
                node: addr,
                color: va.rb_color,
            });
        }
        if va.rb_color == RB_RED && is_red(parent) {
            return Err(InvariantError::RedRed {
                node: addr,
                parent: parent as usize,
            });
        }
        let left_bh = check_subtree(w, va.rb_left, n, depth + 1)?;

        // In-order visit.
        if va.va_start >= va.va_end {
            return Err(InvariantError::EmptyRange {
                node: addr,
                start: va.va_start,
                end: va.va_end,
            });
        }
        if !w.prev.is_null() {
            let p = &*w.prev;
            if p.va_start >= va.va_start {
                return Err(InvariantError::Order {
                    prev: w.prev as usize,
                    prev_start: p.va_start,
                    node: addr,
                    start: va.va_start,
                });
            }
            if p.va_end > va.va_start {
                return Err(InvariantError::Overlap {
                    prev: w.prev as usize,
                    prev_end: p.va_end,
                    node: addr,
                    start: va.va_start,
                });
            }
        }
        if w.cursor != n {
            return Err(InvariantError::ListOrder {
                index: w.visited,
                list_node: w.cursor as usize,
                tree_node: addr,
            });
        }
        if va.list_prev != w.prev {
            return Err(InvariantError::ListBackLink {
                node: addr,
                list_prev: va.list_prev as usize,
                expected: w.prev as usize,
            });
        }
        w.cursor = va.list_next;
        w.prev = n;
        w.visited += 1;

        let right_bh = check_subtree(w, va.rb_right, n, depth + 1)?;
        if left_bh != right_bh {
            return Err(InvariantError::BlackHeight {
                node: addr,
                left: left_bh,
                right: right_bh,
            });
        }
        if w.augmented {
            let computed = compute_subtree_max_size(n);
            if computed != va.subtree_max_size {
                return Err(InvariantError::SubtreeMax {
                    node: addr,
                    start: va.va_start,
                    end: va.va_end,
                    stored: va.subtree_max_size,
                    computed,
                });
            }
        }
        Ok(left_bh + (va.rb_color == RB_BLACK) as usize)
    }
}

/// Verify `root`: parent links, red-black colouring and black heights,
/// non-empty non-overlapping ranges in BST order, list == in-order walk,
/// count, and (augmented) every `subtree_max_size`. O(n).
pub fn check_invariants(root: &VmapAreaRoot) -> Result<(), InvariantError> {
    let mut w = Walk {
        augmented: root.augmented,
        recorded: root.count,
        visited: 0,
        prev: ptr::null_mut(),
        cursor: root.list_head,
    };
    // SAFETY: links reachable from a root point to its live nodes; the walk
    // is bounded in depth and node count against corrupted links.
    unsafe {
        if !root.root.is_null() && (*root.root).rb_color != RB_BLACK {
            return Err(InvariantError::RootNotBlack {
                node: root.root as usize,
            });
        }
        check_subtree(&mut w, root.root, ptr::null_mut(), 0)?;
    }
    if !w.cursor.is_null() {
        return Err(InvariantError::ListOrder {
            index: w.visited,
            list_node: w.cursor as usize,
            tree_node: 0,
        });
    }
    if root.list_tail != w.prev {
        return Err(InvariantError::ListTail {
            list_tail: root.list_tail as usize,
            expected: w.prev as usize,
        });
    }
    if w.visited != root.count {
        return Err(InvariantError::Count {
            counted: w.visited,
            recorded: root.count,
        });
    }
    Ok(())
}

/// Compare [`find_vmap_lowest_match`] with a linear scan of the list that
/// applies the same rule (DEBUG_AUGMENT_LOWEST_MATCH_CHECK).
pub fn check_lowest_match(root: &VmapAreaRoot, size: usize, align: usize, vstart: usize) -> Result<(), InvariantError> {
    let tree = find_vmap_lowest_match(root, size, align, vstart, usize::MAX) as usize;
    let mut linear = 0;
    if root.augmented && size != 0 && align.is_power_of_two() {
        let scan = |length: usize| {
            root.iter()
                .find(|va| va.size() >= length && va_fit_start(va, size, align, vstart, usize::MAX).is_some())
                .map_or(0, |va| va as *const VmapArea as usize)
        };
        if let Some(length) = search_length(size, align) {
            linear = scan(length);
        }
        if linear == 0 {
            linear = scan(size);
        }
    }
    if tree != linear {
        return Err(InvariantError::LowestMatch {
            size,
            align,
            vstart,
            tree,
            linear,
        });
    }
    Ok(())
}

/// Check that the areas of `trees` plus the `extra` ranges (e.g. a purge
/// chain) tile `[start, end)` exactly: no gap, no overlap, nothing outside.
/// In errors, `source` is the index into `trees`, or `trees.len()` for `extra`.
pub fn check_coverage(
    trees: &[&VmapAreaRoot],
    extra: &[(usize, usize)],
    start: usize,
    end: usize,
) -> Result<(), InvariantError> {
    let total = trees.iter().map(|t| t.len()).sum::<usize>() + extra.len();
    let mut ranges: Vec<(usize, usize, usize)> = Vec::with_capacity(total);
    for (i, t) in trees.iter().enumerate() {
        ranges.extend(t.iter().map(|va| (va.va_start, va.va_end, i)));
    }
    ranges.extend(extra.iter().map(|&(s, e)| (s, e, trees.len())));
    ranges.sort_unstable();
    let mut covered = start;
    for (s, e, source) in ranges {
        if s >= e || s < start || e > end {
            return Err(InvariantError::CoverageBounds {
                start: s,
                end: e,
                lo: start,
                hi: end,
                source,
            });
        }
        if s > covered {
            return Err(InvariantError::CoverageGap { from: covered, to: s });
        }
        if s < covered {
            return Err(InvariantError::CoverageOverlap {
                start: s,
                end: e,
                covered_to: covered,
                source,
            });
        }
        covered = e;
    }
    if covered != end {
        return Err(InvariantError::CoverageGap { from: covered, to: end });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
