//! Handing freed heap memory back to the operating system after start-up work.
//!
//! Batch calibration runs the model at every size up to `max_batch` once. On a CNN
//! (MobileNetV2 on onnxruntime, issue 19) the batch-8 trial frees about 100 MB of
//! activations that glibc's malloc then keeps in the calling thread's arena: an idle
//! worker held 171 MB of RSS, 74 MB after `malloc_trim(0)`; the batch-1 worker idles at 88 MB.
//! Returning it costs one walk over the arenas, once per calibration trial.
//! [`resident_bytes`] also lets the calibration see what each trial took
//! (`classifier::BatchSearch`).

/// Returns the heap memory freed so far to the operating system, where the allocator
/// allows it (glibc's `malloc_trim`); elsewhere does nothing. With debug logging on, logs
/// the resident set before and after (Linux); otherwise reads nothing from `/proc`.
pub fn release_freed() {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        trim();
        return;
    }
    let before = resident_bytes();
    trim();
    let after = resident_bytes();
    if let (Some(before), Some(after)) = (before, after) {
        tracing::debug!(
            rss_before_mb = before / (1 << 20),
            rss_after_mb = after / (1 << 20),
            "freed heap memory returned to the operating system"
        );
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // one FFI call; with crates/kafka/src/headers.rs the only unsafe code
fn trim() {
    // SAFETY: malloc_trim takes no pointers; it locks and walks glibc's own arenas, and is
    // safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// The process's resident set in bytes (`VmRSS` in `/proc/self/status`), where there is one.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
