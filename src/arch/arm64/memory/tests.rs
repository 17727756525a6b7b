// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `memory` (`cargo htest`), kept apart so that the
//! algorithm file reads as the algorithm.

use super::*;

#[test]
fn kimage_indices_match_linux_layout() {
    let va = VirtAddr(KIMAGE_VADDR);
    assert_eq!(va.pgd_index(), 256);
    assert_eq!(va.pud_index(), 0);
    assert_eq!(va.pmd_index(), 128);
    assert_eq!(va.pte_index(), 0);
    for level in 0..4 {
        let idx = [va.pgd_index(), va.pud_index(), va.pmd_index(), va.pte_index()][level];
        assert_eq!(va.table_index(level), idx);
    }
}

#[test]
fn alignment_helpers() {
    let a = VirtAddr(0x1234);
    assert_eq!(a.page_align_down().0, 0x1000);
    assert_eq!(a.page_align_up().0, 0x2000);
    assert_eq!(a.page_offset(), 0x234);
    assert!(VirtAddr(0x20_0000).is_aligned(PMD_SIZE));
    assert_eq!(level_size(1), PUD_SIZE);
    assert_eq!(level_size(3), PAGE_SIZE);
}
