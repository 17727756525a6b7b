// SPDX-License-Identifier: GPL-2.0-only
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
//!   been flushed yet (5.10's `vmap_purge_list`, an llist: here a chain
//!   through [`VmapArea::purge_next`]; a third, non-augmented
//!   [`VmapAreaRoot`] would be 6.x's purge tree).
//!
//! One [`VmapAreaRoot`] type serves all trees: a red-black tree keyed by
//! `va_start` ([`lib::rbtree`](crate::lib::rbtree), Linux's lib/rbtree.c, with
//! the free tree's `subtree_max_size` kept by its augmented callbacks) and an
//! address-sorted doubly-linked list threaded through the same intrusive
//! [`VmapArea`] nodes. Nodes are owned by the caller's object cache
//! ([`VmapAreaAlloc`]); tree operations never allocate memory except the one
//! node a "no edge" split needs, taken from that cache.
//!
//! This module is portable and host-tested; the kernel's `vmalloc.rs` wraps
//! the roots in locks and builds `alloc_vmap_area`/`free_vmap_area` on top.
//! The free-space functions keep Linux's names and are `#[no_mangle]`, so
//! `break find_vmap_lowest_match` works in GDB.
//!
//! # Search length
//!
//! [`find_vmap_lowest_match`] is 5.10's walk: it prunes subtrees with
//! `length = size + align - 1` (a hole that big holds an aligned block
//! wherever it starts) but takes any node met on the way down or back up
//! in which the block happens to fit (`is_within_this_va`). For `align > 1`
//! the result therefore depends on the tree's shape, not only on the free
//! ranges: a small hole that fits by luck wins only if it lies on the walk.
//! The free tree goes through the same rebalancing as 5.10's (lib/rbtree.c,
//! the same insert/erase sequence), so the address is the one Linux picks;
//! `tests.rs` replays allocation traces against a separate transcription of
//! 5.10's functions to show it.

use alloc::vec::Vec;
use core::fmt;
use core::ptr::{self, NonNull};

use crate::lib::rbtree::{self, RB_BLACK, RB_RED, RbAugment, RbEntry, RbLink, RbNode, RbRoot, RbSearch};

#[cfg(target_os = "none")]
pub use crate::mm::{vmalloc::VmStruct, vmap_block::VmapBlock};

/// Host build: the tree code never looks behind a [`VmapOwner`], and the
/// kernel's `vm_struct` does not exist there; an empty type stands in.
#[cfg(not(target_os = "none"))]
pub enum VmStruct {}
/// Host build: as [`VmStruct`].
#[cfg(not(target_os = "none"))]
pub enum VmapBlock {}

type Link = *mut VmapArea;

/// What a busy [`VmapArea`] belongs to (Linux's `va->vm`, which in 5.10 also
/// shares storage with `subtree_max_size`; the vmap block index is an
/// xarray there). The tree code never touches it.
///
/// `repr(usize)` fixes the layout the GDB helpers read (lx-vmallocinfo): a
/// tag word with these discriminants, then the pointer.
#[repr(usize)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VmapOwner {
    /// Free, lazily freed, being set up, or a `vm_map_ram` area.
    #[default]
    None = 0,
    /// A vmalloc/vmap/ioremap area and its `vm_struct`.
    VmStruct(NonNull<VmStruct>) = 1,
    /// A node of the vmap block index: the block it stands for.
    Block(NonNull<VmapBlock>) = 2,
}

impl VmapOwner {
    /// The `vm_struct`, if the area has one.
    pub fn vm_struct(self) -> Option<NonNull<VmStruct>> {
        match self {
            Self::VmStruct(vm) => Some(vm),
            _ => None,
        }
    }

    /// The vmap block, if this is a block index node.
    pub fn block(self) -> Option<NonNull<VmapBlock>> {
        match self {
            Self::Block(vb) => Some(vb),
            _ => None,
        }
    }

    pub fn is_none(self) -> bool {
        self == Self::None
    }
}

/// One virtual range `[va_start, va_end)`: an intrusive node of a
/// [`VmapAreaRoot`] (Linux's `struct vmap_area`).
///
/// The tree and list links are private; they are visible in GDB as
/// `rb_node` (`rb_parent`, `rb_right`, `rb_left`, `rb_color`), `list_prev`,
/// `list_next`.
#[repr(C)]
pub struct VmapArea {
    pub va_start: usize,
    pub va_end: usize,
    rb_node: RbNode,
    /// Free tree only: the largest `va_end - va_start` in this subtree.
    pub subtree_max_size: usize,
    list_prev: Link,
    list_next: Link,
    /// The owner of a busy area; never touched here.
    pub vm: VmapOwner,
    /// Lazy-purge chain link for the kernel's use; never touched here.
    pub purge_next: *mut VmapArea,
}

crate::rb_entry!(VmapArea, rb_node);

impl VmapArea {
    /// A detached node for `[start, end)`. Every node must be initialised
    /// with this before it is passed to a tree function.
    pub const fn new(start: usize, end: usize) -> Self {
        Self {
            va_start: start,
            va_end: end,
            rb_node: RbNode::new(),
            subtree_max_size: 0,
            list_prev: ptr::null_mut(),
            list_next: ptr::null_mut(),
            vm: VmapOwner::None,
            purge_next: ptr::null_mut(),
        }
    }

    /// `va_end - va_start` (Linux's `va_size`).
    #[inline(always)]
    pub const fn size(&self) -> usize {
        self.va_end.wrapping_sub(self.va_start)
    }

    /// Is the node linked into a tree?
    pub fn is_linked(&self) -> bool {
        self.rb_node.is_linked()
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

    /// Forget the tree and list links (the node's tree was emptied at once).
    fn detach(&mut self) {
        // SAFETY: only called on nodes whose tree dropped them as a whole
        // (take_all), which never touches them again.
        unsafe { self.rb_node.clear() };
        self.list_prev = ptr::null_mut();
        self.list_next = ptr::null_mut();
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

/// `subtree_max_size` of a child, 0 for none.
///
/// # Safety
///
/// `n` is `None` or the node of a live [`VmapArea`].
#[inline(always)]
unsafe fn get_subtree_max_size(n: Option<NonNull<RbNode>>) -> usize {
    match n {
        // SAFETY: the caller's contract.
        Some(n) => unsafe { VmapArea::from_rb_node(n).as_ref().subtree_max_size },
        None => 0,
    }
}

/// max(own size, children's maxima) from the children's stored values.
///
/// # Safety
///
/// The children of `va` are live [`VmapArea`]s.
#[inline(always)]
unsafe fn compute_subtree_max_size(va: &VmapArea) -> usize {
    // SAFETY: the caller's contract.
    unsafe {
        va.size()
            .max(get_subtree_max_size(va.rb_node.left()))
            .max(get_subtree_max_size(va.rb_node.right()))
    }
}

/// The free tree's callbacks (Linux's `free_vmap_area_rb_augment_cb`,
/// `RB_DECLARE_CALLBACKS_MAX` over `va_size` into `subtree_max_size`).
struct FreeVmapAreaAugment;

// SAFETY: the callbacks read the children's maxima and write only the
// node's own `subtree_max_size`.
unsafe impl RbAugment for FreeVmapAreaAugment {
    #[inline(always)]
    unsafe fn compute(node: NonNull<RbNode>, exit: bool) -> bool {
        // SAFETY: every node of the free tree is a live VmapArea (callback
        // contract), and so are its children.
        unsafe {
            let va = VmapArea::from_rb_node(node).as_ptr();
            let max = compute_subtree_max_size(&*va);
            if exit && (*va).subtree_max_size == max {
                return true;
            }
            (*va).subtree_max_size = max;
            false
        }
    }

    #[inline(always)]
    unsafe fn copy(old: NonNull<RbNode>, new: NonNull<RbNode>) {
        // SAFETY: both are nodes of live VmapAreas (callback contract).
        unsafe {
            let max = VmapArea::from_rb_node(old).as_ref().subtree_max_size;
            (*VmapArea::from_rb_node(new).as_ptr()).subtree_max_size = max;
        }
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
/// leaks them (empty it with [`VmapAreaRoot::take_all`] first). The nodes
/// follow [`lib::rbtree`](crate::lib::rbtree)'s contract of a linked node,
/// which the unsafe functions that link them pass on to their callers.
pub struct VmapAreaRoot {
    root: RbRoot<VmapArea>,
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
            root: RbRoot::new(),
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
            _root: core::marker::PhantomData,
        }
    }

    /// Free tree: the largest hole (0 if empty or not augmented).
    pub fn max_free_size(&self) -> usize {
        match self.root.root() {
            // SAFETY: the top node is a live node of this tree.
            Some(top) if self.augmented => unsafe { top.as_ref().subtree_max_size },
            _ => 0,
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
        self.root.height()
    }

    /// Empty the tree and hand back all its nodes in address order, each
    /// detached (5.10's `list_replace_init` of the purge list). The caller
    /// owns every yielded node: it can merge it into another tree or free it.
    /// Nodes not consumed because the iterator is dropped early are leaked.
    pub fn take_all(&mut self) -> VmapAreaDrain {
        let head = self.list_head;
        self.root.clear();
        self.list_head = ptr::null_mut();
        self.list_tail = ptr::null_mut();
        self.count = 0;
        VmapAreaDrain { next: head }
    }

    /// Where a node for `[start, end)` would hang, or the node it overlaps
    /// (Linux's `find_va_links`).
    #[inline(always)]
    fn find_va_links(&self, start: usize, end: usize) -> RbSearch<VmapArea> {
        self.root.search_by(|va| end <= va.va_start, |va| start >= va.va_end)
    }

    /// Hang the detached `va` at `link`, put it into the list next to its
    /// parent, and rebalance (Linux's `link_va`, plus the free tree's
    /// `augment_tree_propagate_from`).
    ///
    /// # Safety
    ///
    /// `va` is a valid unlinked node that keeps the linked-node contract of
    /// [`lib::rbtree`](crate::lib::rbtree) while in this tree; `link` came
    /// from this tree with no change since.
    unsafe fn link_va(&mut self, va: NonNull<VmapArea>, link: RbLink<VmapArea>) {
        let v = va.as_ptr();
        let parent = link.parent();
        // SAFETY: `v` is the caller's valid node; `parent` and its list
        // neighbours are live nodes of this tree.
        unsafe {
            match parent {
                None => {
                    (*v).list_prev = ptr::null_mut();
                    (*v).list_next = ptr::null_mut();
                    self.list_head = v;
                    self.list_tail = v;
                }
                Some(p) if link.is_left() => {
                    // The in-order predecessor of the parent: before it.
                    let p = p.as_ptr();
                    let prev = (*p).list_prev;
                    (*v).list_prev = prev;
                    (*v).list_next = p;
                    if prev.is_null() {
                        self.list_head = v;
                    } else {
                        (*prev).list_next = v;
                    }
                    (*p).list_prev = v;
                }
                Some(p) => {
                    let p = p.as_ptr();
                    let next = (*p).list_next;
                    (*v).list_prev = p;
                    (*v).list_next = next;
                    if next.is_null() {
                        self.list_tail = v;
                    } else {
                        (*next).list_prev = v;
                    }
                    (*p).list_next = v;
                }
            }
            self.count += 1;
            self.root.rb_link_node(va, link);
            if self.augmented {
                // Make the maxima on the path include the new leaf first, so
                // the rotations of the rebalance start from correct values.
                let size = (*v).size();
                (*v).subtree_max_size = size;
                let mut p = parent;
                while let Some(n) = p {
                    if (*n.as_ptr()).subtree_max_size >= size {
                        break;
                    }
                    (*n.as_ptr()).subtree_max_size = size;
                    p = rbtree::rb_parent(n);
                }
                self.root.rb_insert_augmented::<FreeVmapAreaAugment>(va);
            } else {
                self.root.rb_insert_color(va);
            }
        }
    }

    /// Remove a linked `va` from tree and list and mark it detached
    /// (Linux's `unlink_va`).
    ///
    /// # Safety
    ///
    /// `va` is linked into this tree.
    unsafe fn unlink(&mut self, va: NonNull<VmapArea>) {
        let v = va.as_ptr();
        // SAFETY: `v` is a node of this tree (caller), its list neighbours too.
        unsafe {
            if self.augmented {
                self.root.rb_erase_augmented::<FreeVmapAreaAugment>(va);
            } else {
                self.root.rb_erase(va);
            }
            let prev = (*v).list_prev;
            let next = (*v).list_next;
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
            // rb_erase already marked the rb_node unlinked.
            (*v).list_prev = ptr::null_mut();
            (*v).list_next = ptr::null_mut();
        }
    }

    /// Restore `subtree_max_size` from `va` up after `va` was resized in
    /// place (a no-op on a non-augmented tree).
    ///
    /// # Safety
    ///
    /// `va` is linked into this tree.
    #[inline(always)]
    unsafe fn propagate_from(&self, va: NonNull<VmapArea>) {
        if self.augmented {
            // SAFETY: `va` is a node of this augmented tree (caller).
            unsafe { augment_tree_propagate_from(va) }
        }
    }
}

/// Address-order iterator over a [`VmapAreaRoot`].
pub struct Iter<'a> {
    next: Link,
    _root: core::marker::PhantomData<&'a VmapAreaRoot>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a VmapArea;

    fn next(&mut self) -> Option<&'a VmapArea> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: list links of a borrowed root point to its live nodes.
        let va = unsafe { &*self.next };
        self.next = va.list_next;
        Some(va)
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
            (*va.as_ptr()).detach();
        }
        Some(va)
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
    // SAFETY: `va` is linked into a free tree (caller), whose nodes are all
    // augmented by these callbacks.
    unsafe { FreeVmapAreaAugment::propagate(VmapArea::rb_node(va).as_ptr(), ptr::null_mut()) }
}

/// The area of `root` containing `addr`, or null (Linux's `__find_vmap_area`;
/// `vfree` uses it on the busy tree).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __find_vmap_area(root: &VmapAreaRoot, addr: usize) -> *mut VmapArea {
    match root.root.search_by(|va| addr < va.va_start, |va| addr >= va.va_end) {
        RbSearch::Found(va) => va.as_ptr(),
        RbSearch::Vacant(_) => ptr::null_mut(),
    }
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
    // SAFETY: `va` is a valid node (caller).
    let v = unsafe { va.as_ref() };
    let (start, end) = (v.va_start, v.va_end);
    if start >= end {
        return Err(VmapError::BadRange { start, end });
    }
    debug_assert!(
        !v.is_linked(),
        "insert_vmap_area: {:#x} is already in a tree",
        va.as_ptr() as usize
    );
    match root.find_va_links(start, end) {
        RbSearch::Vacant(link) => {
            // SAFETY: `va` is unlinked and stays valid while linked (caller);
            // the link is fresh.
            unsafe { root.link_va(va, link) };
            Ok(())
        }
        // SAFETY: a node found in the tree is live.
        RbSearch::Found(other) => Err(overlap(start, end, unsafe { other.as_ref() })),
    }
}

/// The error for `[start, end)` overlapping the tree's node `other`.
fn overlap(start: usize, end: usize, other: &VmapArea) -> VmapError {
    VmapError::Overlap {
        start,
        end,
        other_start: other.va_start,
        other_end: other.va_end,
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
    // SAFETY: `va` is a valid node (caller).
    if !unsafe { va.as_ref() }.is_linked() {
        return false;
    }
    // SAFETY: a linked `va` is linked into `root` (caller).
    unsafe { root.unlink(va) };
    true
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
    // SAFETY: `va` is a valid node (caller).
    let (start, end) = unsafe { (va.as_ref().va_start, va.as_ref().va_end) };
    if start >= end {
        return Err(VmapError::BadRange { start, end });
    }
    // SAFETY: as above.
    let linked = unsafe { va.as_ref() }.is_linked();
    debug_assert!(
        !linked,
        "merge_or_add_vmap_area: {:#x} is already in a tree",
        va.as_ptr() as usize
    );
    let link = match root.find_va_links(start, end) {
        RbSearch::Vacant(link) => link,
        // SAFETY: a node found in the tree is live.
        RbSearch::Found(other) => return Err(overlap(start, end, unsafe { other.as_ref() })),
    };
    // The list neighbours of the insertion point, found from the descent.
    let (prev, next) = match link.parent() {
        None => (None, None),
        // SAFETY: the parent is a live node of `root`.
        Some(p) if link.is_left() => (unsafe { p.as_ref() }.list_prev(), Some(p)),
        // SAFETY: as above.
        Some(p) => (Some(p), unsafe { p.as_ref() }.list_next()),
    };
    // SAFETY: `va` is unlinked and the caller's; prev/next are the list
    // neighbours of its place in `root`, found just now.
    Ok(unsafe { merge_at(root, va, alloc, prev, next, Some(link)) })
}

/// [`merge_or_add_vmap_area`] for a range that ends where `hint`, a node of
/// `root`, starts: `hint` and its list predecessor are then the range's
/// neighbours, which is all the descent in `merge_or_add_vmap_area` finds
/// out, so the tree ends up exactly as that call leaves it (5.10's shape),
/// without the descent. The purge merges a run of adjacent areas freed
/// from the top down this way. Any other range takes the full path.
///
/// # Safety
///
/// As for [`merge_or_add_vmap_area`]; `hint` is a live node of `root`.
pub unsafe fn merge_or_add_vmap_area_below(
    root: &mut VmapAreaRoot,
    va: NonNull<VmapArea>,
    alloc: &mut dyn VmapAreaAlloc,
    hint: NonNull<VmapArea>,
) -> Result<NonNull<VmapArea>, VmapError> {
    // SAFETY: `va` and `hint` are valid nodes (caller).
    let (start, end, h) = unsafe { (va.as_ref().va_start, va.as_ref().va_end, hint.as_ref()) };
    let prev = h.list_prev();
    // SAFETY: a list neighbour of a live node is a live node of `root`.
    let prev_ok = prev.is_none_or(|p| unsafe { p.as_ref() }.va_end <= start);
    if start >= end || h.va_start != end || !prev_ok {
        // SAFETY: the caller's contract is merge_or_add_vmap_area's.
        return unsafe { merge_or_add_vmap_area(root, va, alloc) };
    }
    // SAFETY: `va` is unlinked and the caller's (caller); `prev` and `hint`
    // are its neighbours in `root`, and it touches `hint`, so no link is
    // needed.
    Ok(unsafe { merge_at(root, va, alloc, prev, Some(hint), None) })
}

/// The merge itself, once the neighbours of `va`'s place are known.
///
/// # Safety
///
/// `va` is unlinked, the caller's and freeable by `alloc`; `prev`/`next`
/// are the nodes of `root` just below and above its range (or None); `link`
/// is its vacant place in `root`, required when it touches neither.
unsafe fn merge_at(
    root: &mut VmapAreaRoot,
    va: NonNull<VmapArea>,
    alloc: &mut dyn VmapAreaAlloc,
    prev: Option<NonNull<VmapArea>>,
    next: Option<NonNull<VmapArea>>,
    link: Option<RbLink<VmapArea>>,
) -> NonNull<VmapArea> {
    // SAFETY: `va` is a valid node (caller).
    let (start, end) = unsafe { (va.as_ref().va_start, va.as_ref().va_end) };
    // SAFETY: list neighbours are live nodes of `root`.
    let with_next = next.filter(|n| unsafe { n.as_ref() }.va_start == end);
    // SAFETY: as above.
    let with_prev = prev.filter(|p| unsafe { p.as_ref() }.va_end == start);

    // In every arm, `prev`/`next` are live nodes of `root`, which frees its
    // nodes through `alloc`, and `va` is unlinked, the caller's, and
    // freeable by `alloc`. Growing a neighbour over `va`'s range keeps the
    // order (the range touches it and overlaps nothing).
    match (with_prev, with_next) {
        //  |<--prev-->|<--va-->|<--next-->|   prev swallows both.
        // Remove next while every size in the tree is still accurate.
        // SAFETY: see above.
        (Some(prev), Some(next)) => unsafe {
            let new_end = next.as_ref().va_end;
            root.unlink(next);
            alloc.free_vmap_area_node(next);
            (*prev.as_ptr()).va_end = new_end;
            root.propagate_from(prev);
            alloc.free_vmap_area_node(va);
            prev
        },
        // SAFETY: see above.
        (Some(prev), None) => unsafe {
            (*prev.as_ptr()).va_end = end;
            root.propagate_from(prev);
            alloc.free_vmap_area_node(va);
            prev
        },
        // SAFETY: see above.
        (None, Some(next)) => unsafe {
            (*next.as_ptr()).va_start = start;
            root.propagate_from(next);
            alloc.free_vmap_area_node(va);
            next
        },
        // SAFETY: see above; the link is fresh (nothing changed since the
        // search).
        (None, None) => unsafe {
            root.link_va(va, link.expect("a range that touches no neighbour needs its link"));
            va
        },
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

/// `subtree_max_size` of a free-tree node, 0 for none.
///
/// # Safety
///
/// `va` is `None` or a live node.
#[inline(always)]
unsafe fn max_size(va: Option<NonNull<VmapArea>>) -> usize {
    // SAFETY: the caller's contract.
    va.map_or(0, |va| unsafe { va.as_ref() }.subtree_max_size)
}

/// Linux 5.10's `find_vmap_lowest_match`: the first free area, on a walk
/// down the tree towards the lowest address, in which `size` bytes aligned
/// to `align` (a power of two) fit at or after `vstart`; null if none is
/// met (null on a non-augmented tree too).
///
/// The walk goes left while the left subtree holds an area of at least
/// `size + align - 1` bytes above `vstart`; at the node where it stops it
/// takes the node if the block fits there (whatever its size), else goes
/// right if that subtree holds a large enough area, else climbs back up,
/// taking the first ancestor that fits or descending into the first right
/// subtree that is large enough and wholly above `vstart`. The caller
/// checks the end bound (5.10's `__alloc_vmap_area` does, after the
/// search). See the module docs for why the answer depends on the tree's
/// shape when `align > 1`.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn find_vmap_lowest_match(root: &VmapAreaRoot, size: usize, align: usize, vstart: usize) -> *mut VmapArea {
    use rbtree::{rb_left, rb_parent, rb_right};

    if !root.augmented || size == 0 || !align.is_power_of_two() {
        return ptr::null_mut();
    }
    // Adjust the search size for the alignment overhead (5.10's length).
    let Some(length) = size.checked_add(align - 1) else {
        return ptr::null_mut();
    };
    let fits = |va: &VmapArea| va_fit_start(va, size, align, vstart, usize::MAX).is_some();
    let mut node = root.root.root();
    // SAFETY: (whole walk) every node is reached through the links of the
    // borrowed tree, so it is live and its links are valid.
    unsafe {
        while let Some(n) = node {
            let va = n.as_ref();
            if max_size(rb_left(n)) >= length && vstart < va.va_start {
                node = rb_left(n);
                continue;
            }
            if fits(va) {
                return n.as_ptr();
            }
            // No point going right unless that subtree has a large enough area.
            if max_size(rb_right(n)) >= length {
                node = rb_right(n);
                continue;
            }
            // Roll back to the first right subtree that can satisfy the
            // request; the vstart condition makes this happen at most once.
            node = None;
            let mut up = n;
            while let Some(p) = rb_parent(up) {
                up = p;
                let va = p.as_ref();
                if fits(va) {
                    return p.as_ptr();
                }
                if max_size(rb_right(p)) >= length && vstart <= va.va_start {
                    node = rb_right(p);
                    break;
                }
            }
        }
    }
    ptr::null_mut()
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
    let v = va.as_ptr();
    // SAFETY: `va` is a live node (caller).
    if fit == FitType::NothingFit || classify_va_fit_type(unsafe { va.as_ref() }, nva_start, size) != fit {
        return Err(VmapError::BadRange {
            start: nva_start,
            end: nva_start.wrapping_add(size),
        });
    }
    // In every arm `va` is a live node of `root` (caller); resizing it within
    // its old range keeps the order, and propagate_from repairs the maxima;
    // nodes of `root` are freeable by `alloc`, and a node from `alloc` is
    // valid memory for a VmapArea.
    match fit {
        // SAFETY: see above.
        FitType::FlFitType => unsafe {
            root.unlink(va);
            alloc.free_vmap_area_node(va);
        },
        // SAFETY: see above.
        FitType::LeFitType => unsafe {
            (*v).va_start = nva_start + size;
            root.propagate_from(va);
        },
        // SAFETY: see above.
        FitType::ReFitType => unsafe {
            (*v).va_end = nva_start;
            root.propagate_from(va);
        },
        // SAFETY: see above; the new node's range is the in-order
        // predecessor slot of `va`, which link_before finds.
        FitType::NeFitType => unsafe {
            let lva = alloc.alloc_vmap_area_node().ok_or(VmapError::NoMemory)?;
            lva.as_ptr().write(VmapArea::new((*v).va_start, nva_start));
            (*v).va_start = nva_start + size;
            root.propagate_from(va);
            // The left remainder is va's in-order predecessor.
            let link = root.root.link_before(va);
            root.link_va(lva, link);
        },
        FitType::NothingFit => unreachable!(),
    }
    Ok(())
}

/// Linux's `__alloc_vmap_area`: the start address of `size` bytes taken from
/// the free tree, or `vend` on any failure (Linux's convention; the free
/// tree is then unchanged). A thin shell over [`try_alloc_vmap_area_range`]
/// that returns an integer, so that GDB's `finish` can print it (a
/// `Result` this large is returned through memory, which GDB cannot find
/// again after the return).
///
/// # Safety
///
/// As for [`try_alloc_vmap_area_range`].
#[allow(non_snake_case)]
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn __alloc_vmap_area(
    root: &mut VmapAreaRoot,
    size: usize,
    align: usize,
    vstart: usize,
    vend: usize,
    alloc: &mut dyn VmapAreaAlloc,
) -> usize {
    // SAFETY: the caller's contract is try_alloc_vmap_area_range's.
    unsafe { try_alloc_vmap_area_range(root, size, align, vstart, vend, alloc) }.unwrap_or(vend)
}

/// Take `size` bytes aligned to `align` from the free tree `root`, inside
/// `[vstart, vend)`, in the area [`find_vmap_lowest_match`] chooses.
/// Returns the start address. `NoMemory` only when a split needed a node and
/// `alloc` had none (free tree unchanged).
///
/// # Safety
///
/// The nodes of `root` are freeable by `alloc`, and the nodes `alloc` hands
/// out may be linked into `root` (a full fit frees the area's node through
/// `alloc`; a no-edge split links one of `alloc`'s).
pub unsafe fn try_alloc_vmap_area_range(
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
    let Some(va) = NonNull::new(find_vmap_lowest_match(root, size, align, vstart)) else {
        return Err(VmapError::NoSpace { size, align });
    };
    // SAFETY: the search returns a live node of `root`.
    let found = unsafe { va.as_ref() };
    // The "vend" restriction, checked on the area the search chose (as
    // 5.10 does): a lower area that fits below vend but was not on the
    // walk does not count.
    let nva_start = va_fit_start(found, size, align, vstart, vend).ok_or(VmapError::NoSpace { size, align })?;
    let fit = classify_va_fit_type(found, nva_start, size);
    // SAFETY: `va` is a live node of `root`, whose nodes are freeable by
    // `alloc` (the caller's contract).
    unsafe { adjust_va_to_fit_type(root, va, nva_start, size, fit, alloc)? };
    Ok(nva_start)
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
///
/// # Safety
///
/// `n` and `parent` are `None` or nodes reachable from a borrowed root
/// (corrupt links are caught by the depth and count bounds only as far as
/// they still point to live nodes).
unsafe fn check_subtree(
    w: &mut Walk,
    n: Option<NonNull<VmapArea>>,
    parent: Option<NonNull<VmapArea>>,
    depth: usize,
) -> Result<usize, InvariantError> {
    let Some(n) = n else { return Ok(1) };
    let addr = n.as_ptr() as usize;
    let parent_addr = parent.map_or(0, |p| p.as_ptr() as usize);
    if depth > MAX_CHECK_DEPTH || w.visited > w.recorded {
        return Err(InvariantError::TooDeep { node: addr, depth });
    }
    // SAFETY: `n` is a live node (caller).
    let va = unsafe { n.as_ref() };
    // SAFETY: as above, its links point to live nodes.
    let found_parent = unsafe { rbtree::rb_parent(n) };
    if found_parent != parent {
        return Err(InvariantError::ParentLink {
            node: addr,
            parent: found_parent.map_or(0, |p| p.as_ptr() as usize),
            expected: parent_addr,
        });
    }
    let color = va.rb_node.color();
    if color != RB_RED && color != RB_BLACK {
        return Err(InvariantError::BadColor { node: addr, color });
    }
    // SAFETY: the parent is a live node (caller).
    if color == RB_RED && parent.is_some_and(|p| unsafe { p.as_ref() }.rb_node.color() == RB_RED) {
        return Err(InvariantError::RedRed {
            node: addr,
            parent: parent_addr,
        });
    }
    // SAFETY: the children of a live node are live.
    let left_bh = unsafe { check_subtree(w, rbtree::rb_left(n), Some(n), depth + 1)? };

    // In-order visit.
    if va.va_start >= va.va_end {
        return Err(InvariantError::EmptyRange {
            node: addr,
            start: va.va_start,
            end: va.va_end,
        });
    }
    if !w.prev.is_null() {
        // SAFETY: `prev` is the node visited before, live.
        let p = unsafe { &*w.prev };
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
    if w.cursor != n.as_ptr() {
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
    w.prev = n.as_ptr();
    w.visited += 1;

    // SAFETY: the children of a live node are live.
    let right_bh = unsafe { check_subtree(w, rbtree::rb_right(n), Some(n), depth + 1)? };
    if left_bh != right_bh {
        return Err(InvariantError::BlackHeight {
            node: addr,
            left: left_bh,
            right: right_bh,
        });
    }
    if w.augmented {
        // SAFETY: the children of a live node are live.
        let computed = unsafe { compute_subtree_max_size(va) };
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
    Ok(left_bh + (color == RB_BLACK) as usize)
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
    let top = root.root.root();
    if let Some(t) = top {
        // SAFETY: the top node of a borrowed tree is live.
        if unsafe { t.as_ref() }.rb_node.color() != RB_BLACK {
            return Err(InvariantError::RootNotBlack {
                node: t.as_ptr() as usize,
            });
        }
    }
    // SAFETY: links reachable from a root point to its live nodes; the walk
    // is bounded in depth and node count against corrupted links.
    unsafe { check_subtree(&mut w, top, None, 0)? };
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

/// Compare [`find_vmap_lowest_match`] with a linear scan of the list
/// (DEBUG_AUGMENT_LOWEST_MATCH_CHECK). As in 5.10 the check uses align 1:
/// then the walk's pruning length is the size itself, so the walk must find
/// the lowest fitting area. (With a larger alignment the walk depends on
/// the tree's shape by design; see the module docs.)
pub fn check_lowest_match(root: &VmapAreaRoot, size: usize, vstart: usize) -> Result<(), InvariantError> {
    let tree = find_vmap_lowest_match(root, size, 1, vstart) as usize;
    let mut linear = 0;
    if root.augmented && size != 0 {
        linear = root
            .iter()
            .find(|va| va_fit_start(va, size, 1, vstart, usize::MAX).is_some())
            .map_or(0, |va| va as *const VmapArea as usize);
    }
    if tree != linear {
        return Err(InvariantError::LowestMatch {
            size,
            align: 1,
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

// ---------------------------------------------------------------------------
// pcpu_get_vm_areas' search (5.10: congruent areas, top-down)
// ---------------------------------------------------------------------------

/// The free area that contains `addr` (its end included), else the highest
/// one below `addr`; null if none starts at or below it (Linux:
/// pvm_find_va_enclose_addr).
pub fn pvm_find_va_enclose_addr(root: &VmapAreaRoot, addr: usize) -> *mut VmapArea {
    let mut n = root.root.root();
    let mut va = ptr::null_mut();
    while let Some(tmp) = n {
        // SAFETY: the nodes reached from the root are live nodes of `root`.
        let t = unsafe { tmp.as_ref() };
        if t.va_start <= addr {
            va = tmp.as_ptr();
            if t.va_end >= addr {
                break;
            }
            // SAFETY: as above.
            n = unsafe { rbtree::rb_right(tmp) };
        } else {
            // SAFETY: as above.
            n = unsafe { rbtree::rb_left(tmp) };
        }
    }
    va
}

/// From `*va` downwards (through the address-sorted list), the highest
/// `align`ed end not above `vmalloc_end` that leaves room in its free area;
/// `*va` is left at that area (null, and 0 returned, if there is none)
/// (Linux: pvm_determine_end_from_reverse).
///
/// # Safety
///
/// `*va` is null or a live node of a free tree, whose list is walked.
pub unsafe fn pvm_determine_end_from_reverse(va: &mut *mut VmapArea, align: usize, vmalloc_end: usize) -> usize {
    let vmalloc_end = vmalloc_end & !(align - 1);
    while let Some(cur) = NonNull::new(*va) {
        // SAFETY: a live node (caller), and its list neighbours are too.
        let c = unsafe { cur.as_ref() };
        let addr = (c.va_end & !(align - 1)).min(vmalloc_end);
        if c.va_start < addr {
            return addr;
        }
        *va = c.list_prev().map_or(ptr::null_mut(), NonNull::as_ptr);
    }
    0
}

/// The base address for `pcpu_get_vm_areas`: the highest `base`, aligned to
/// `align`, such that every `[base + offsets[i], base + offsets[i] +
/// sizes[i])` lies in one free area of `root` inside `[vstart, vend)`; None
/// if there is none. 5.10's search, step for step: start from the area at
/// the highest offset against the top of the free space, and walk the
/// areas downwards (cyclically) until a whole round fits; an area that does
/// not fit lowers the base to the next free area's aligned end below it and
/// restarts the round from there.
///
/// Offsets and sizes must be `align`ed, non-overlapping, and there must be
/// at least one area (the caller checks).
pub fn pcpu_get_vm_areas_base(
    root: &VmapAreaRoot,
    offsets: &[usize],
    sizes: &[usize],
    align: usize,
    vstart: usize,
    vend: usize,
) -> Option<usize> {
    let nr_vms = offsets.len();
    let vmalloc_start = vstart.next_multiple_of(align);
    let vmalloc_end = vend & !(align - 1);
    let mut last_area = 0;
    for area in 0..nr_vms {
        if offsets[area] > offsets[last_area] {
            last_area = area;
        }
    }
    let last_end = offsets[last_area] + sizes[last_area];
    if vmalloc_end.saturating_sub(vmalloc_start) < last_end {
        return None;
    }
    let (mut area, mut term_area) = (last_area, last_area);
    let mut start = offsets[area];
    let mut end = start + sizes[area];
    let mut va = pvm_find_va_enclose_addr(root, vmalloc_end);
    // SAFETY: `va` is null or a node of `root` (from the search).
    let mut base = unsafe { pvm_determine_end_from_reverse(&mut va, align, vmalloc_end) }.wrapping_sub(end);
    loop {
        // The wrapping arithmetic is Linux's: a base below vmalloc_start
        // (or a wrap past 0) is the end of the search.
        if base.wrapping_add(last_end) < vmalloc_start + last_end {
            return None;
        }
        let cur = NonNull::new(va)?;
        // SAFETY: a live node of `root`.
        let c = unsafe { cur.as_ref() };
        // This area overflows the free area above: the next base is the
        // aligned end of the free area below.
        if base.wrapping_add(end) > c.va_end {
            // SAFETY: `va` is null or a node of `root`.
            base = unsafe { pvm_determine_end_from_reverse(&mut va, align, vmalloc_end) }.wrapping_sub(end);
            term_area = area;
            continue;
        }
        // It starts below this free area: move to the one before.
        if base.wrapping_add(start) < c.va_start {
            va = c.list_prev().map_or(ptr::null_mut(), NonNull::as_ptr);
            // SAFETY: `va` is null or a node of `root`.
            base = unsafe { pvm_determine_end_from_reverse(&mut va, align, vmalloc_end) }.wrapping_sub(end);
            term_area = area;
            continue;
        }
        // It fits: on to the previous area, done when the round is complete.
        area = (area + nr_vms - 1) % nr_vms;
        if area == term_area {
            break;
        }
        start = offsets[area];
        end = start + sizes[area];
        va = pvm_find_va_enclose_addr(root, base.wrapping_add(end));
    }
    Some(base)
}

#[cfg(test)]
mod tests;
