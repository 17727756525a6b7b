// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `gfp`: Linux's values and `%pGg` names.

use super::*;
use alloc::format;

#[test]
fn values_are_linux_5_10s() {
    assert_eq!(GFP_KERNEL.bits(), 0xcc0);
    assert_eq!((GFP_KERNEL | __GFP_ZERO).bits(), 0xdc0);
    assert_eq!((GFP_KERNEL | __GFP_NOWARN).bits(), 0x2cc0);
    assert!((GFP_KERNEL | __GFP_ZERO).contains(__GFP_ZERO));
    assert!(!GFP_KERNEL.contains(__GFP_ZERO));
    assert_eq!((GFP_KERNEL | __GFP_ZERO | __GFP_HIGHMEM) & GFP_RECLAIM_MASK, GFP_KERNEL);
}

#[test]
fn names_as_pgg() {
    assert_eq!(format!("{}", GFP_KERNEL), "GFP_KERNEL");
    assert_eq!(format!("{}", GFP_KERNEL | __GFP_ZERO), "GFP_KERNEL|__GFP_ZERO");
    assert_eq!(
        format!("{:?}", GFP_KERNEL | __GFP_NOWARN | __GFP_ZERO | __GFP_HIGHMEM),
        "0x2dc2(GFP_KERNEL|__GFP_HIGHMEM|__GFP_NOWARN|__GFP_ZERO)"
    );
    assert_eq!(
        format!("{}", __GFP_ZERO | __GFP_DIRECT_RECLAIM),
        "__GFP_ZERO|__GFP_DIRECT_RECLAIM"
    );
    assert_eq!(format!("{}", gfp_t::default()), "none");
    assert_eq!(format!("{}", gfp_t(0x2001)), "__GFP_NOWARN|0x1");
    assert_eq!(!GFP_KERNEL & (GFP_KERNEL | __GFP_ZERO), __GFP_ZERO);
}
