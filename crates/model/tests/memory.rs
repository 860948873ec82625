//! `memory::release_freed` returns freed heap memory to the operating system. Its own test
//! binary: the resident set is the process's, and other tests running beside it would
//! move it. glibc's `malloc_trim` is what it tests, so it runs only there.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

/// The resident set in bytes.
fn resident() -> u64 {
    argus_model::memory::resident_bytes().expect("a Linux resident set")
}

#[test]
fn freed_memory_leaves_the_resident_set() {
    // 64 MB in 64 kB blocks (under glibc's mmap threshold, so they come from its heap),
    // each followed by a small block that stays: freeing the big ones leaves holes that
    // free() alone cannot give back, as calibration's activations do.
    let mut pins = Vec::new();
    let mut blocks = Vec::new();
    for _ in 0..1024 {
        blocks.push(vec![1u8; 64 << 10]);
        pins.push(vec![1u8; 64]);
    }
    let held = resident();
    drop(blocks);
    let before = resident();
    argus_model::memory::release_freed();
    let after = resident();
    assert!(held >= 64 << 20, "{held}");
    assert!(
        before.saturating_sub(after) >= 48 << 20,
        "resident {} MB before, {} MB after",
        before >> 20,
        after >> 20
    );
    assert_eq!(pins.len(), 1024);
}
