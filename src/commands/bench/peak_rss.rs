//! The bench process's resident memory as Linux reports it in `/proc/self/status`: the peak
//! (`VmHWM`), and a reset of that peak (`/proc/self/clear_refs`), so the peak of one phase (the
//! pipeline run) can be told from the whole run's. Elsewhere, or where /proc is not readable,
//! there is no figure (`None`).

/// The process's peak resident set size in bytes (`VmHWM`).
pub fn peak() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// Reset the peak to the current resident set size; false when the kernel does not allow it.
pub fn reset_peak() -> bool {
    // "5" resets VmHWM (Linux 4.0 and later; proc(5), /proc/pid/clear_refs).
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

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
