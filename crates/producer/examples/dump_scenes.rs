//! Writes synthetic camera frames as JPEGs plus a `labels.csv` ground truth.
//!
//! ```text
//! cargo run --release -p argus-producer --example dump_scenes -- \
//!     OUT_DIR COUNT [--seed S] [--cameras 4] [--width 640] [--height 480] [--first-camera 0]
//! ```
//!
//! Frame `i` is `seq = i / cameras` of camera `c = first_camera + i % cameras`,
//! written as `cam{c}_{seq:06}.jpg` (JPEG quality 85, like the real producer).
//! `labels.csv` has the header `file,camera,seq,person` (person is 0 or 1).

use std::error::Error;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use argus_producer::scene;
use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;

const JPEG_QUALITY: u8 = 85;
const USAGE: &str =
    "usage: dump_scenes OUT_DIR COUNT [--seed S] [--cameras 4] [--width 640] [--height 480] [--first-camera 0]";

#[derive(Debug)]
struct Args {
    out_dir: PathBuf,
    count: u64,
    seed: u64,
    cameras: u32,
    first_camera: u32,
    width: u32,
    height: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut seed = 0u64;
    let mut cameras = 4u32;
    let mut first_camera = 0u32;
    let mut width = 640u32;
    let mut height = 480u32;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Err(USAGE.to_string());
        }
        if let Some(flag) = arg.strip_prefix("--") {
            let value = it
                .next()
                .ok_or_else(|| format!("--{flag} needs a value\n{USAGE}"))?;
            let bad = |e: std::num::ParseIntError| format!("--{flag} {value:?}: {e}");
            match flag {
                "seed" => seed = value.parse().map_err(bad)?,
                "cameras" => cameras = value.parse().map_err(bad)?,
                "first-camera" => first_camera = value.parse().map_err(bad)?,
                "width" => width = value.parse().map_err(bad)?,
                "height" => height = value.parse().map_err(bad)?,
                _ => return Err(format!("unknown flag --{flag}\n{USAGE}")),
            }
        } else {
            positional.push(arg);
        }
    }
    let [out_dir, count] = positional.as_slice() else {
        return Err(USAGE.to_string());
    };
    let count = count
        .parse()
        .map_err(|e| format!("COUNT {count:?}: {e}\n{USAGE}"))?;
    if cameras == 0 {
        return Err("--cameras must be at least 1".to_string());
    }
    if first_camera.checked_add(cameras - 1).is_none() {
        return Err("--first-camera + --cameras overflows u32".to_string());
    }
    if width < 32 || height < 32 {
        return Err("--width and --height must be at least 32".to_string());
    }
    Ok(Args {
        out_dir: PathBuf::from(out_dir),
        count,
        seed,
        cameras,
        first_camera,
        width,
        height,
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    fs::create_dir_all(&args.out_dir)?;
    let mut labels = BufWriter::new(File::create(args.out_dir.join("labels.csv"))?);
    writeln!(labels, "file,camera,seq,person")?;

    let mut render_time = Duration::ZERO;
    let mut encode_time = Duration::ZERO;
    let mut persons = 0u64;
    let cameras = u64::from(args.cameras);
    for i in 0..args.count {
        let camera = args.first_camera + u32::try_from(i % cameras)?;
        let seq = i / cameras;

        let t0 = Instant::now();
        let frame = scene::render(args.seed, camera, seq, args.width, args.height);
        let t1 = Instant::now();
        let mut jpeg = Vec::with_capacity(64 * 1024);
        JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY).encode(
            frame.image.as_raw(),
            args.width,
            args.height,
            ExtendedColorType::Rgb8,
        )?;
        render_time += t1 - t0;
        encode_time += t1.elapsed();

        let name = format!("cam{camera}_{seq:06}.jpg");
        fs::write(args.out_dir.join(&name), &jpeg)?;
        let person = u8::from(frame.person.is_some());
        persons += u64::from(person);
        writeln!(labels, "{name},{camera},{seq},{person}")?;
    }
    labels.flush()?;

    let n = args.count.max(1) as f64;
    eprintln!(
        "wrote {} frames ({} with a person) of {}x{} to {}; mean render {:.3} ms, mean jpeg encode {:.3} ms",
        args.count,
        persons,
        args.width,
        args.height,
        args.out_dir.display(),
        render_time.as_secs_f64() * 1e3 / n,
        encode_time.as_secs_f64() * 1e3 / n,
    );
    Ok(())
}
