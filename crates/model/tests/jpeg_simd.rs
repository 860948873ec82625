//! The build's JPEG decoder has libjpeg-turbo's SIMD code wherever it could have it.
//!
//! On x86-64 the SIMD code needs `nasm` at build time; a target dir built before nasm was
//! installed keeps the build without it, and JPEG frames decode about 1.4× slower
//! (`argus_model::jpeg::SIMD`, `scripts/turbojpeg-simd`). `scripts/test` installs nasm and
//! rebuilds such a build first, so this fails only for a build it did not prepare.

#[test]
fn libjpeg_turbo_has_simd_when_nasm_is_installed() {
    let nasm = std::process::Command::new("nasm")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    // Elsewhere (aarch64) the SIMD code needs no nasm.
    let needs_nasm = cfg!(target_arch = "x86_64");
    assert!(
        argus_model::jpeg::SIMD || (needs_nasm && !nasm),
        "libjpeg-turbo was built without SIMD although {}: run scripts/turbojpeg-simd \
         (or cargo clean -p turbojpeg-sys) and rebuild",
        if needs_nasm {
            "nasm is installed"
        } else {
            "this target needs no nasm"
        }
    );
}
