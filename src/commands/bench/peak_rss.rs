//! The bench process's resident memory as Linux reports it in `/proc/self/status`: the peak
//! (`VmHWM`), and a reset of that peak (`/proc/self/clear_refs`), so the peak of one phase (the
//! pipeline run) can be told from the whole run's. Before the reset, glibc's allocator hands the
//! memory it keeps but no longer uses back to the kernel (`malloc_trim`): what `init` and the
//! first ceiling run freed would otherwise stay resident and count as the pipeline's. Elsewhere,
//! or where /proc is not readable, there is no figure (`None`).

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

/// Give the pages the allocator holds free back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
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

/// Other allocators: nothing to release.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

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
        // 64 MiB, every byte written so every page is resident.
        let block = std::hint::black_box(vec![1u8; 64 * MIB as usize]);
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
