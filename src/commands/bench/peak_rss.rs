//! The bench process's resident memory as Linux reports it in `/proc/self/status`: the peak
//! (`VmHWM`), and a reset of that peak (`/proc/self/clear_refs`), so the peak of one phase (the
//! pipeline run) can be told from the whole run's. Before the reset, the allocators hand the
//! memory they keep but no longer use back to the kernel (jemalloc's purge, glibc's
//! `malloc_trim`): what `init` and the first ceiling run freed would otherwise stay resident
//! and count as the pipeline's. Elsewhere, or where /proc is not readable, there is no figure
//! (`None`).

/// The process's peak resident set size in bytes (`VmHWM`).
pub fn peak() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// Return freed memory to the kernel, then reset the peak to the current resident set size;
/// false when the kernel does not allow the reset.
pub fn reset_peak() -> bool {
    release_free_memory();
    // "5" resets VmHWM (Linux 4.0 and later; proc(5), /proc/pid/clear_refs).
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// Give the pages the allocators hold free back to the kernel: jemalloc's (the program's
/// allocator) and glibc's (the C libraries').
fn release_free_memory() {
    purge_jemalloc();
    trim_glibc();
}

/// Purge every jemalloc arena's unused dirty pages.
fn purge_jemalloc() {
    // "arena.<MALLCTL_ARENAS_ALL>.purge" (MALLCTL_ARENAS_ALL = 4096, jemalloc(3)).
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: the name is a NUL-terminated string that lives for the call; a purge reads and
    // writes no value, so null pointers with zero lengths are what jemalloc(3) asks for; it
    // only returns to the kernel pages no allocation holds, under jemalloc's own locks.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

/// Release glibc's free heap memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_glibc() {
    extern "C" {
        /// glibc: release free memory from the heap's arenas; returns 1 when some was released.
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim takes a plain size (no pointers), only returns to the kernel memory
    // no allocation holds, and takes each arena's lock itself, so it is sound to call at any
    // time from any thread; glibc (target_env = "gnu") always provides it.
    unsafe {
        malloc_trim(0);
    }
}

/// Other C libraries: nothing to release.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_glibc() {}

/// A `kB` line of `/proc/self/status`.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_peak_follows_touched_memory_and_resets() {
        assert!(reset_peak(), "/proc/self/clear_refs refused the reset");
        let start = peak().expect("VmHWM on Linux");
        // 64 MiB in 4 KiB allocations (small ones, which the allocator keeps in its arenas
        // when freed, unlike one large block), every byte written so every page is resident.
        let block: Vec<Vec<u8>> = (0..16 * 1024).map(|_| vec![1u8; 4096]).collect();
        let block = std::hint::black_box(block);
        let during = peak().expect("VmHWM");
        assert!(
            during >= start + 60 * MIB,
            "peak {during} after touching 64 MiB (was {start})"
        );
        drop(block);
        assert!(reset_peak());
        let after = peak().expect("VmHWM");
        assert!(
            after + 32 * MIB < during,
            "peak {after} after the reset, {during} before"
        );
    }
}
