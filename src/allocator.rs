//! The allocator of the `trackless` binary (and of the benches, so that they measure what
//! runs), with feature `mimalloc` (on by default; `--no-default-features` builds with the
//! system's malloc alone).
//!
//! Per message the core makes thousands of small allocations (attribute values, URLs,
//! findings) and frees them all at the end: glibc's malloc served them at ~14 % of the core's
//! instructions. mimalloc serves those. Blocks of 64 KiB and more (a decoded part, the
//! rewritten message) stay with the system's malloc, which grows a large block by remapping
//! it and gives it back at once when freed: with mimalloc for everything, a 64 MiB message
//! peaked at 220 MiB against 141 MiB with glibc alone (`benches/memory.sh`); split, 143 MiB.
//! mimalloc is built without transparent huge pages (feature `no_thp`): with them, a run of
//! `filter` on a small message held 21 MB instead of 12 MB.

#[cfg(feature = "mimalloc")]
pub use split::Allocator;

#[cfg(feature = "mimalloc")]
mod split {
    use libmimalloc_sys as mi;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::ffi::c_void;

    /// Blocks of this size and more go to the system's malloc.
    const LARGE: usize = 64 << 10;

    /// Small blocks to mimalloc, large ones to the system's malloc. A block is freed by the
    /// allocator its size says, which is the one that made it: `dealloc` and `realloc` are
    /// given the layout the block was allocated (or last reallocated) with.
    pub struct Allocator;

    fn large(size: usize) -> bool {
        size >= LARGE
    }

    /// The alignment of every block of more than 8 bytes from mimalloc's plain entry points
    /// (its `MI_MAX_ALIGN_SIZE` on x86-64 and aarch64: block sizes are rounded to multiples of
    /// it, from a start that has it); blocks of 8 bytes or less are aligned to 8.
    const MIN_ALIGN: usize = 16;

    /// Does a block of `size` bytes from `mi_malloc`/`mi_realloc` have `align`?
    fn plain(align: usize, size: usize) -> bool {
        align <= MIN_ALIGN && align <= size
    }

    /// mimalloc, its plain entry points for ordinary layouts, the aligned ones for the rest
    /// (which are what the `mimalloc` crate calls for every block).
    struct MiMalloc;

    // SAFETY: each method passes the layout's size (and alignment where the plain entry
    // points would not give it) to mimalloc, which returns null or a block that satisfies it;
    // blocks are freed and resized by mimalloc only (`Allocator` sends them back by size).
    unsafe impl GlobalAlloc for MiMalloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let (size, align) = (layout.size(), layout.align());
            unsafe {
                if plain(align, size) {
                    mi::mi_malloc(size) as *mut u8
                } else {
                    mi::mi_malloc_aligned(size, align) as *mut u8
                }
            }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let (size, align) = (layout.size(), layout.align());
            unsafe {
                if plain(align, size) {
                    mi::mi_zalloc(size) as *mut u8
                } else {
                    mi::mi_zalloc_aligned(size, align) as *mut u8
                }
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            unsafe { mi::mi_free(ptr as *mut c_void) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let align = layout.align();
            unsafe {
                if plain(align, new_size) {
                    mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
                } else {
                    mi::mi_realloc_aligned(ptr as *mut c_void, new_size, align) as *mut u8
                }
            }
        }
    }

    // SAFETY: every method forwards to an allocator chosen by the block's size alone, so a
    // block is always freed or resized by the allocator that made it; a block that changes
    // class in `realloc` is moved with `alloc`, copy and `dealloc` of the two.
    unsafe impl GlobalAlloc for Allocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if large(layout.size()) {
                unsafe { System.alloc(layout) }
            } else {
                unsafe { MiMalloc.alloc(layout) }
            }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if large(layout.size()) {
                unsafe { System.alloc_zeroed(layout) }
            } else {
                unsafe { MiMalloc.alloc_zeroed(layout) }
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if large(layout.size()) {
                unsafe { System.dealloc(ptr, layout) }
            } else {
                unsafe { MiMalloc.dealloc(ptr, layout) }
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            match (large(layout.size()), large(new_size)) {
                (true, true) => unsafe { System.realloc(ptr, layout, new_size) },
                (false, false) => unsafe { MiMalloc.realloc(ptr, layout, new_size) },
                _ => {
                    // SAFETY: the caller guarantees new_size, rounded up to the alignment,
                    // does not overflow isize.
                    let new =
                        unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                    let moved = unsafe { self.alloc(new) };
                    if !moved.is_null() {
                        unsafe {
                            std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                            self.dealloc(ptr, layout);
                        }
                    }
                    moved
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Blocks grown and shrunk across the threshold keep all their bytes, whichever
        /// allocator holds them.
        #[test]
        fn blocks_move_between_the_two() {
            let a = Allocator;
            let byte = |i: usize, size: usize| ((i * 7 + size) % 251) as u8;
            unsafe {
                let mut size = 100;
                let mut p = a.alloc(Layout::from_size_align(size, 8).unwrap());
                assert!(!p.is_null());
                for new_size in [LARGE - 1, LARGE, 4 * LARGE, LARGE + 1, LARGE - 1, 50] {
                    for i in 0..size {
                        *p.add(i) = byte(i, size);
                    }
                    p = a.realloc(p, Layout::from_size_align(size, 8).unwrap(), new_size);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % 8, 0);
                    for i in 0..size.min(new_size) {
                        assert_eq!(*p.add(i), byte(i, size), "{size} -> {new_size} at {i}");
                    }
                    size = new_size;
                }
                a.dealloc(p, Layout::from_size_align(size, 8).unwrap());
                let z = a.alloc_zeroed(Layout::from_size_align(2 * LARGE, 64).unwrap());
                assert!(std::slice::from_raw_parts(z, 2 * LARGE)
                    .iter()
                    .all(|&b| b == 0));
                a.dealloc(z, Layout::from_size_align(2 * LARGE, 64).unwrap());
            }
        }

        /// Every layout gets its alignment, by the plain entry points or the aligned ones,
        /// through allocation and reallocation (a hash table asks for 16 with any size).
        #[test]
        fn blocks_have_their_alignment() {
            let a = Allocator;
            let mut held = Vec::new();
            for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
                for size in (1..200).chain([1000, 4097, LARGE - 1, LARGE]) {
                    let layout = Layout::from_size_align(size, align).unwrap();
                    unsafe {
                        let p = a.alloc(layout);
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "alloc {size} bytes, align {align}");
                        let q = a.realloc(p, layout, size * 3 / 2 + 1);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "realloc {size}, align {align}");
                        held.push((q, Layout::from_size_align(size * 3 / 2 + 1, align).unwrap()));
                        let z = a.alloc_zeroed(layout);
                        assert_eq!(z as usize % align, 0, "zeroed {size}, align {align}");
                        held.push((z, layout));
                    }
                }
            }
            for (p, layout) in held {
                unsafe { a.dealloc(p, layout) }
            }
        }
    }
}
