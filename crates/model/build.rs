//! Tells the crate whether the libjpeg-turbo it links was built with its SIMD code.
//!
//! turbojpeg-sys builds libjpeg-turbo from source and gets the SIMD code only when `nasm`
//! is on the build machine; without it the build succeeds, its warning is hidden (cargo
//! shows build-script warnings of path dependencies only), and a 640×480 frame takes
//! about 1.4× as long to decode and preprocess (2.4 against 1.7 ms here). Cargo does not
//! rebuild it when nasm is installed later, so a target directory can keep the slow build
//! for good. The
//! library's installed `jconfig.h` says which it is (`#define WITH_SIMD 1`); its include
//! directory reaches this script as `DEP_TURBOJPEG_INCLUDE` because turbojpeg-sys is a
//! direct dependency with `links = "turbojpeg"`. The result is the `jpeg_simd` cfg, read
//! by `argus_model::jpeg::SIMD`.
use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(jpeg_simd)");
    println!("cargo::rerun-if-env-changed=DEP_TURBOJPEG_INCLUDE");
    let Some(include) = std::env::var_os("DEP_TURBOJPEG_INCLUDE") else {
        return;
    };
    let jconfig = Path::new(&include).join("jconfig.h");
    println!("cargo::rerun-if-changed={}", jconfig.display());
    let text = std::fs::read_to_string(&jconfig).unwrap_or_default();
    if text
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["#define", "WITH_SIMD", "1"])
    {
        println!("cargo::rustc-cfg=jpeg_simd");
    }
}
