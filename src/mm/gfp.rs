// SPDX-License-Identifier: GPL-2.0-only
//! Allocation flags (Linux: include/linux/gfp.h), as far as this kernel
//! has a use for them: what a vmalloc caller can ask for.
//!
//! The bit values are 5.10's, so that `mode:0xcc0(GFP_KERNEL)` in a
//! failure report reads as on Linux. There is no reclaim, no I/O and no
//! file system here: `GFP_KERNEL`'s reclaim/IO/FS bits are carried along
//! (and printed) but change nothing; `__GFP_HIGHMEM` is accepted and
//! ignored (arm64 has no highmem). What acts: `__GFP_ZERO` (zeroed pages,
//! as `init_on_alloc` does for every allocation) and `__GFP_NOWARN` (no
//! `warn_alloc` report on failure).

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

/// Linux's gfp_t.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct gfp_t(u32);

impl gfp_t {
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Are all of `flags`' bits set?
    pub const fn contains(self, flags: gfp_t) -> bool {
        self.0 & flags.0 == flags.0
    }
    pub const fn union(self, flags: gfp_t) -> gfp_t {
        gfp_t(self.0 | flags.0)
    }
    pub const fn intersection(self, flags: gfp_t) -> gfp_t {
        gfp_t(self.0 & flags.0)
    }
}

impl BitOr for gfp_t {
    type Output = gfp_t;
    fn bitor(self, rhs: gfp_t) -> gfp_t {
        self.union(rhs)
    }
}

impl BitOrAssign for gfp_t {
    fn bitor_assign(&mut self, rhs: gfp_t) {
        *self = self.union(rhs);
    }
}

impl BitAnd for gfp_t {
    type Output = gfp_t;
    fn bitand(self, rhs: gfp_t) -> gfp_t {
        self.intersection(rhs)
    }
}

impl Not for gfp_t {
    type Output = gfp_t;
    fn not(self) -> gfp_t {
        gfp_t(!self.0)
    }
}

/// Accepted and ignored: all of arm64's memory is in the linear map.
pub const __GFP_HIGHMEM: gfp_t = gfp_t(0x02);
/// Pages below 4 GiB (ZONE_DMA32); see vmalloc_32 for what acts on it here.
pub const __GFP_DMA32: gfp_t = gfp_t(0x04);
pub const __GFP_HIGH: gfp_t = gfp_t(0x20);
pub const __GFP_IO: gfp_t = gfp_t(0x40);
pub const __GFP_FS: gfp_t = gfp_t(0x80);
/// Return zeroed pages.
pub const __GFP_ZERO: gfp_t = gfp_t(0x100);
pub const __GFP_ATOMIC: gfp_t = gfp_t(0x200);
pub const __GFP_DIRECT_RECLAIM: gfp_t = gfp_t(0x400);
pub const __GFP_KSWAPD_RECLAIM: gfp_t = gfp_t(0x800);
/// No allocation-failure report.
pub const __GFP_NOWARN: gfp_t = gfp_t(0x2000);
pub const __GFP_RETRY_MAYFAIL: gfp_t = gfp_t(0x4000);
/// One attempt, no retry (kvmalloc's kmalloc half above a page).
pub const __GFP_NORETRY: gfp_t = gfp_t(0x10000);
pub const __GFP_RECLAIM: gfp_t = gfp_t(__GFP_DIRECT_RECLAIM.0 | __GFP_KSWAPD_RECLAIM.0);

/// The usual flags of kernel-internal allocations (0xcc0).
pub const GFP_KERNEL: gfp_t = gfp_t(__GFP_RECLAIM.0 | __GFP_IO.0 | __GFP_FS.0);
/// May not sleep, may use reserves.
pub const GFP_ATOMIC: gfp_t = gfp_t(__GFP_HIGH.0 | __GFP_ATOMIC.0 | __GFP_KSWAPD_RECLAIM.0);
/// May not sleep.
pub const GFP_NOWAIT: gfp_t = __GFP_KSWAPD_RECLAIM;
pub const GFP_DMA32: gfp_t = __GFP_DMA32;
/// The flags a nested allocation inherits (mm/internal.h's
/// GFP_RECLAIM_MASK, restricted to the flags defined here).
pub const GFP_RECLAIM_MASK: gfp_t = gfp_t(__GFP_RECLAIM.0 | __GFP_IO.0 | __GFP_FS.0 | __GFP_NOWARN.0);

/// Names in the order of Linux's `__def_gfpflag_names` (composites first),
/// for `%pGg`.
const GFP_NAMES: &[(gfp_t, &str)] = &[
    (GFP_KERNEL, "GFP_KERNEL"),
    (GFP_ATOMIC, "GFP_ATOMIC"),
    (GFP_NOWAIT, "GFP_NOWAIT"),
    (__GFP_HIGHMEM, "__GFP_HIGHMEM"),
    (GFP_DMA32, "GFP_DMA32"),
    (__GFP_HIGH, "__GFP_HIGH"),
    (__GFP_ATOMIC, "__GFP_ATOMIC"),
    (__GFP_IO, "__GFP_IO"),
    (__GFP_FS, "__GFP_FS"),
    (__GFP_NOWARN, "__GFP_NOWARN"),
    (__GFP_RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL"),
    (__GFP_NORETRY, "__GFP_NORETRY"),
    (__GFP_ZERO, "__GFP_ZERO"),
    (__GFP_RECLAIM, "__GFP_RECLAIM"),
    (__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"),
    (__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"),
];

/// Linux's `%pGg`: `GFP_KERNEL|__GFP_ZERO`; unnamed bits as `0x...`;
/// `none` for no flags.
impl fmt::Display for gfp_t {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let mut rest = self.0;
        let mut sep = "";
        for &(flag, name) in GFP_NAMES {
            if rest & flag.0 == flag.0 {
                write!(f, "{sep}{name}")?;
                rest &= !flag.0;
                sep = "|";
            }
        }
        if rest != 0 {
            write!(f, "{sep}{rest:#x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for gfp_t {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}({})", self.0, self)
    }
}

#[cfg(test)]
mod tests;
