//! Per-frame photometric features and mergeable image histograms, computed on raw packed RGB8
//! buffers (row-major, 3 bytes per pixel, no padding) and pinned bit for bit to Pillow, numpy
//! and OpenCV by `fixtures/make_image_fixtures.py` / `tests/image_golden.rs`.
//!
//! Everything works on 8-bit sRGB code values **without linearisation**.
//!
//! # Per-pixel channels
//!
//! * `Y` (luma) is exactly Pillow's `Image.convert('L')` (ITU-R 601-2 weights
//!   299/587/114 in 16-bit fixed point, rounded half up):
//!   `Y = (R·19595 + G·38470 + B·7471 + 0x8000) >> 16` — see [`luma_601`]. The weights sum to
//!   65536, so `Y ∈ [0, 255]` and grey `(v, v, v)` maps to `v`. Checked against Pillow 11.3 on
//!   all 2^24 colours.
//! * `H`, `S` (8-bit hue and saturation) are exactly Pillow's `Image.convert('HSV')` channels,
//!   reproduced with Pillow's mix of `f32` and `f64` arithmetic (`colorsys` formulas, then
//!   `H = trunc(h·255)`, `S = trunc(s·255)`, `H = S = 0` for greys) — see [`pillow_hsv`].
//!   Checked against Pillow 11.3 on all 2^24 colours.
//!
//! # Features ([`FrameFeatures`]), with `N = width·height`
//!
//! * `luma_mean = mean(Y) / 255`.
//! * `rms_contrast = std(Y) / 255`, population std (ddof = 0). Equals Pillow's
//!   `ImageStat.Stat(L).stddev[0] / 255` and numpy's `(y / 255).std()`.
//! * `sat_mean = mean(S) / 255`, `sat_std = std(S) / 255` (ddof = 0), on `[0, 1]`.
//! * Hue: each pixel's hue angle is `θ = H·360/255` degrees (`H·2π/255` radians). Pillow's `H`
//!   is `trunc(h·255)` for a hue fraction `h ∈ [0, 1)`, so 255 steps make a turn; the spec's
//!   `H·360/256` would read hues up to 1.4° low. With saturation weights,
//!   `C = Σ S·cos θ`, `D = Σ S·sin θ`:
//!   `hue_circ_mean = atan2(D, C)` in degrees, wrapped to `[0, 360)`;
//!   `hue_resultant_r = hypot(C, D) / Σ S` (mean resultant length, clamped to `≤ 1`).
//!   When `Σ S = 0` (every pixel grey) both are `0` — never NaN. Being circular, hues of 350°
//!   and 10° average to ≈0° with `R ≈ 1`, not to 180°.
//! * `rgb_rel_c = mean over pixels with R+G+B > 0 of C / (R+G+B)` for `C ∈ {R, G, B}`; pixels
//!   with `R+G+B = 0` are skipped, and when every pixel is skipped (all black) each is `1/3`.
//!   Computed exactly in integers per channel sum and divided once per distinct sum.
//! * `clip_low = #{Y ≤ 5} / N`, `clip_high = #{Y ≥ 250} / N`.
//! * `sharpness = var(∇²Y)` (ddof = 0) of the 3×3 Laplacian `[[0,1,0],[1,-4,1],[0,1,0]]` of the
//!   uint8 `Y` image with OpenCV's default border `BORDER_REFLECT_101` (`gfedcb|abcdefgh|gfedcba`;
//!   a dimension of length 1 reflects onto itself), i.e.
//!   `cv2.Laplacian(y, cv2.CV_64F).var()`. The Laplacian is integer-valued, so its moments are
//!   accumulated exactly in integers.
//! * `entropy = -Σ p_i log2 p_i` over the 256-bin histogram of `Y`, `p_i = count_i / N`,
//!   empty bins skipped (bits; `0` for a constant image, `8` at most).
//! * `width`, `height`, `aspect = width / height`.
//!
//! # Histograms ([`ImageHistograms`])
//!
//! A 256-bin histogram of `Y` and a 16×16 hue×saturation histogram with bin
//! `(H >> 4)·16 + (S >> 4)` (hue bucket major). Counters are `u64`; merge adds bin-wise, is
//! associative and commutative, and the empty histogram is its identity, so per-frame,
//! per-sidecar and per-pane histograms combine exactly.
//!
//! # Performance
//!
//! One pass over the pixels (integer luma, Pillow's HSV in floats only for non-grey pixels,
//! integer accumulators) plus one integer Laplacian pass over the luma plane.

use serde::{Deserialize, Serialize};
use std::f64::consts::TAU;

/// Number of bins of the luma histogram (one per 8-bit value of `Y`).
pub const LUMA_BINS: usize = 256;
/// Buckets per axis of the hue×saturation histogram (`H >> 4`, `S >> 4`).
pub const HUE_SAT_SIDE: usize = 16;
/// Number of bins of the hue×saturation histogram (`16 × 16`).
pub const HUE_SAT_BINS: usize = HUE_SAT_SIDE * HUE_SAT_SIDE;
/// A pixel counts towards `clip_low` when `Y ≤ CLIP_LOW_MAX`.
pub const CLIP_LOW_MAX: u8 = 5;
/// A pixel counts towards `clip_high` when `Y ≥ CLIP_HIGH_MIN`.
pub const CLIP_HIGH_MIN: u8 = 250;
/// Degrees per step of Pillow's 8-bit hue: Pillow stores `H = trunc(h·255)` for a hue `h` in
/// [0, 1), so a full turn is 255 steps and `θ = H·360/255` inverts it (the spec's `H·360/255`
/// reads hues up to 1.4° low and doubles the step across 0°: 350° and 10° would average to
/// 358.6°).
pub const HUE_DEGREES_PER_STEP: f64 = 360.0 / 255.0;

/// Number of distinct values of `R+G+B` (0..=765).
const CHANNEL_SUMS: usize = 766;

/// Invalid image input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Width or height is zero.
    #[error("image has a zero dimension ({width}x{height})")]
    ZeroSize {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The buffer is not exactly `width·height·3` bytes.
    #[error("packed RGB8 buffer for {width}x{height} must be {expected} bytes, got {actual}")]
    BufferLength {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes expected.
        expected: u64,
        /// Bytes given.
        actual: usize,
    },
    /// `width·height·3` does not fit in 64 bits.
    #[error("image dimensions {width}x{height} overflow")]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A (deserialised) histogram has the wrong number of bins.
    #[error("histogram `{field}` must have {expected} bins, got {actual}")]
    HistogramShape {
        /// The histogram's name.
        field: &'static str,
        /// Bins expected.
        expected: usize,
        /// Bins found.
        actual: usize,
    },
}

/// Pillow's `convert('L')` of one pixel: `(R·19595 + G·38470 + B·7471 + 0x8000) >> 16`
/// (ITU-R 601-2, `L = R·299/1000 + G·587/1000 + B·114/1000` in 16-bit fixed point, rounded).
#[inline]
pub fn luma_601(r: u8, g: u8, b: u8) -> u8 {
    let acc = u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000;
    // The weights sum to 2^16, so the shifted value is at most 255.
    (acc >> 16) as u8
}

#[inline]
fn clip8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// Pillow's `convert('HSV')` of one pixel, `[H, S, V]`, bit for bit.
///
/// Mirrors Pillow's `rgb2hsv_row` (`libImaging/Convert.c`): `f32` variables with `f64`
/// literals, so `2.0 + rc - bc` and `h / 6.0 + 1.0` are evaluated in `f64` and stored back to
/// `f32`; `H = (int)(h·255.0)`, `S = (int)(s·255.0)`, `V = max(R, G, B)`; greys give
/// `H = S = 0`. `fmod(x, 1.0)` is computed as `x - 1` for `x ≥ 1`, which is exact here because
/// `x = h/6 + 1 ∈ [5/6, 11/6]` (Sterbenz).
#[inline]
pub fn pillow_hsv(r: u8, g: u8, b: u8) -> [u8; 3] {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if maxc == minc {
        return [0, 0, maxc];
    }
    let cr = f32::from(maxc - minc);
    let s = cr / f32::from(maxc);
    let h: f32 = if r == maxc {
        let gc = f32::from(maxc - g) / cr;
        let bc = f32::from(maxc - b) / cr;
        bc - gc
    } else if g == maxc {
        let rc = f32::from(maxc - r) / cr;
        let bc = f32::from(maxc - b) / cr;
        (2.0 + f64::from(rc) - f64::from(bc)) as f32
    } else {
        let rc = f32::from(maxc - r) / cr;
        let gc = f32::from(maxc - g) / cr;
        (4.0 + f64::from(gc) - f64::from(rc)) as f32
    };
    let x = f64::from(h) / 6.0 + 1.0;
    let h = (if x >= 1.0 { x - 1.0 } else { x }) as f32;
    let uh = clip8((f64::from(h) * 255.0) as i32);
    let us = clip8((f64::from(s) * 255.0) as i32);
    [uh, us, maxc]
}

/// Bin of the hue×saturation histogram for Pillow's 8-bit `H` and `S`:
/// `(H >> 4)·16 + (S >> 4)`.
#[inline]
pub fn hue_sat_bin(h: u8, s: u8) -> usize {
    usize::from(h >> 4) * HUE_SAT_SIDE + usize::from(s >> 4)
}

/// Features of one frame; see the [module documentation](self) for the exact formulas.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameFeatures {
    /// `mean(Y) / 255`.
    pub luma_mean: f64,
    /// `std(Y) / 255`, ddof = 0.
    pub rms_contrast: f64,
    /// `mean(S) / 255` of Pillow's HSV.
    pub sat_mean: f64,
    /// `std(S) / 255`, ddof = 0.
    pub sat_std: f64,
    /// Saturation-weighted circular mean of `H·360/255`, degrees in `[0, 360)`; 0 if all grey.
    pub hue_circ_mean: f64,
    /// Mean resultant length `|Σ S·e^{iθ}| / Σ S` in `[0, 1]`; 0 if all grey.
    pub hue_resultant_r: f64,
    /// Mean of `R / (R+G+B)` over pixels with a non-zero sum (1/3 if none).
    pub rgb_rel_r: f64,
    /// Mean of `G / (R+G+B)` over pixels with a non-zero sum (1/3 if none).
    pub rgb_rel_g: f64,
    /// Mean of `B / (R+G+B)` over pixels with a non-zero sum (1/3 if none).
    pub rgb_rel_b: f64,
    /// Fraction of pixels with `Y ≤ 5`.
    pub clip_low: f64,
    /// Fraction of pixels with `Y ≥ 250`.
    pub clip_high: f64,
    /// Variance (ddof = 0) of the 3×3 Laplacian of `Y`, OpenCV `BORDER_REFLECT_101`.
    pub sharpness: f64,
    /// Shannon entropy (bits) of the 256-bin `Y` histogram.
    pub entropy: f64,
    /// Width in pixels.
    pub width: f64,
    /// Height in pixels.
    pub height: f64,
    /// `width / height`.
    pub aspect: f64,
}

impl FrameFeatures {
    /// Feature names, in the order of [`FrameFeatures::values`].
    pub const NAMES: [&'static str; 16] = [
        "luma_mean",
        "rms_contrast",
        "sat_mean",
        "sat_std",
        "hue_circ_mean",
        "hue_resultant_r",
        "rgb_rel_r",
        "rgb_rel_g",
        "rgb_rel_b",
        "clip_low",
        "clip_high",
        "sharpness",
        "entropy",
        "width",
        "height",
        "aspect",
    ];

    /// Feature values, in the order of [`FrameFeatures::NAMES`].
    pub fn values(&self) -> [f64; 16] {
        [
            self.luma_mean,
            self.rms_contrast,
            self.sat_mean,
            self.sat_std,
            self.hue_circ_mean,
            self.hue_resultant_r,
            self.rgb_rel_r,
            self.rgb_rel_g,
            self.rgb_rel_b,
            self.clip_low,
            self.clip_high,
            self.sharpness,
            self.entropy,
            self.width,
            self.height,
            self.aspect,
        ]
    }
}

/// Mergeable per-pane (or per-camera) image histograms: 256 luma bins and 16×16
/// hue×saturation bins (see [`hue_sat_bin`]), as `u64` pixel counts.
///
/// `Default` is the empty histogram (all 256 + 256 bins zero), the identity of
/// [`merge`](Self::merge). Deserialisation rejects any other number of bins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HistogramsRepr")]
pub struct ImageHistograms {
    /// `luma[y]` = number of pixels with `Y = y`; 256 bins.
    pub luma: Vec<u64>,
    /// `hue_sat[(H >> 4)·16 + (S >> 4)]` = number of pixels in that bucket; 256 bins.
    pub hue_sat: Vec<u64>,
}

#[derive(Deserialize)]
struct HistogramsRepr {
    luma: Vec<u64>,
    hue_sat: Vec<u64>,
}

impl TryFrom<HistogramsRepr> for ImageHistograms {
    type Error = ImageError;

    fn try_from(repr: HistogramsRepr) -> Result<Self, ImageError> {
        for (field, v, expected) in [
            ("luma", &repr.luma, LUMA_BINS),
            ("hue_sat", &repr.hue_sat, HUE_SAT_BINS),
        ] {
            if v.len() != expected {
                return Err(ImageError::HistogramShape {
                    field,
                    expected,
                    actual: v.len(),
                });
            }
        }
        Ok(ImageHistograms {
            luma: repr.luma,
            hue_sat: repr.hue_sat,
        })
    }
}

impl Default for ImageHistograms {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageHistograms {
    /// The empty histogram: 256 zero luma bins and 256 zero hue×saturation bins.
    pub fn new() -> Self {
        ImageHistograms {
            luma: vec![0; LUMA_BINS],
            hue_sat: vec![0; HUE_SAT_BINS],
        }
    }

    /// Histograms of one frame.
    pub fn from_frame(rgb: &[u8], width: u32, height: u32) -> Result<Self, ImageError> {
        let mut h = Self::new();
        h.add_frame(rgb, width, height)?;
        Ok(h)
    }

    /// Adds every pixel of a packed RGB8 frame. Errors (and leaves `self` unchanged) on a bad
    /// buffer. [`frame_features_with_histograms`] does the same while computing features.
    pub fn add_frame(&mut self, rgb: &[u8], width: u32, height: u32) -> Result<(), ImageError> {
        validate(rgb, width, height)?;
        self.ensure_shape();
        let mut luma = [0u64; LUMA_BINS];
        let mut hue_sat = [0u64; HUE_SAT_BINS];
        for px in rgb.chunks_exact(3) {
            let (r, g, b) = (px[0], px[1], px[2]);
            luma[usize::from(luma_601(r, g, b))] += 1;
            let [h, s, _] = pillow_hsv(r, g, b);
            hue_sat[hue_sat_bin(h, s)] += 1;
        }
        self.add_counts(&luma, &hue_sat);
        Ok(())
    }

    /// Adds `other` bin-wise (saturating at `u64::MAX`). Associative and commutative; the empty
    /// histogram is the identity.
    pub fn merge(&mut self, other: &ImageHistograms) {
        add_into(&mut self.luma, &other.luma);
        add_into(&mut self.hue_sat, &other.hue_sat);
    }

    /// `self` merged with `other`, by value.
    pub fn merged(mut self, other: &ImageHistograms) -> Self {
        self.merge(other);
        self
    }

    /// Number of pixels counted (sum of the luma bins).
    pub fn pixel_count(&self) -> u64 {
        self.luma.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }

    /// True when no pixel has been counted.
    pub fn is_empty(&self) -> bool {
        self.luma.iter().all(|&c| c == 0)
    }

    /// Luma bins as proportions summing to 1 (all zeros when empty).
    pub fn luma_proportions(&self) -> Vec<f64> {
        proportions(&self.luma)
    }

    /// Hue×saturation bins as proportions summing to 1 (all zeros when empty), in bin order
    /// `(H >> 4)·16 + (S >> 4)`.
    pub fn hue_sat_proportions(&self) -> Vec<f64> {
        proportions(&self.hue_sat)
    }

    /// Pads bins that are too short (e.g. built by hand) with zeros; never truncates.
    fn ensure_shape(&mut self) {
        if self.luma.len() < LUMA_BINS {
            self.luma.resize(LUMA_BINS, 0);
        }
        if self.hue_sat.len() < HUE_SAT_BINS {
            self.hue_sat.resize(HUE_SAT_BINS, 0);
        }
    }

    fn add_counts(&mut self, luma: &[u64; LUMA_BINS], hue_sat: &[u64; HUE_SAT_BINS]) {
        add_into(&mut self.luma, luma);
        add_into(&mut self.hue_sat, hue_sat);
    }
}

fn add_into(dst: &mut Vec<u64>, src: &[u64]) {
    if dst.len() < src.len() {
        dst.resize(src.len(), 0);
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = d.saturating_add(s);
    }
}

fn proportions(counts: &[u64]) -> Vec<f64> {
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    if total == 0.0 {
        return vec![0.0; counts.len()];
    }
    counts.iter().map(|&c| c as f64 / total).collect()
}

/// Checks dimensions and buffer length; returns the pixel count.
fn validate(rgb: &[u8], width: u32, height: u32) -> Result<usize, ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize { width, height });
    }
    let expected = u64::from(width)
        .checked_mul(u64::from(height))
        .and_then(|p| p.checked_mul(3))
        .ok_or(ImageError::TooLarge { width, height })?;
    if rgb.len() as u64 != expected {
        return Err(ImageError::BufferLength {
            width,
            height,
            expected,
            actual: rgb.len(),
        });
    }
    // The buffer exists, so its pixel count fits in usize.
    Ok(rgb.len() / 3)
}

/// Features of one packed RGB8 frame (row-major, `width·height·3` bytes).
pub fn frame_features(rgb: &[u8], width: u32, height: u32) -> Result<FrameFeatures, ImageError> {
    validate(rgb, width, height)?;
    let (features, _) = compute::<false>(rgb, width, height);
    Ok(features)
}

/// [`frame_features`] and [`ImageHistograms::add_frame`] in one pass over the pixels. On error
/// `hist` is unchanged.
pub fn frame_features_with_histograms(
    rgb: &[u8],
    width: u32,
    height: u32,
    hist: &mut ImageHistograms,
) -> Result<FrameFeatures, ImageError> {
    validate(rgb, width, height)?;
    let (features, acc) = compute::<true>(rgb, width, height);
    hist.ensure_shape();
    hist.add_counts(&acc.luma, &acc.hue_sat);
    Ok(features)
}

/// Integer accumulators of the pixel pass.
struct Accum {
    luma: [u64; LUMA_BINS],
    hue_sat: [u64; HUE_SAT_BINS],
    /// `Σ S` per 8-bit hue value.
    hue_weight: [u64; 256],
    sat_sum: u64,
    sat_sq_sum: u64,
    /// Pixels, and their R and G totals, per value of `R+G+B`.
    sum_count: [u64; CHANNEL_SUMS],
    sum_r: [u64; CHANNEL_SUMS],
    sum_g: [u64; CHANNEL_SUMS],
}

/// Buffer already validated. `HIST` selects whether the hue×saturation bins are counted.
fn compute<const HIST: bool>(rgb: &[u8], width: u32, height: u32) -> (FrameFeatures, Accum) {
    let n_px = rgb.len() / 3;
    let mut y_plane = vec![0u8; n_px];
    let mut acc = Accum {
        luma: [0; LUMA_BINS],
        hue_sat: [0; HUE_SAT_BINS],
        hue_weight: [0; 256],
        sat_sum: 0,
        sat_sq_sum: 0,
        sum_count: [0; CHANNEL_SUMS],
        sum_r: [0; CHANNEL_SUMS],
        sum_g: [0; CHANNEL_SUMS],
    };
    for (px, y_out) in rgb.chunks_exact(3).zip(y_plane.iter_mut()) {
        let (r, g, b) = (px[0], px[1], px[2]);
        let y = luma_601(r, g, b);
        *y_out = y;
        acc.luma[usize::from(y)] += 1;

        let sum = usize::from(r) + usize::from(g) + usize::from(b);
        acc.sum_count[sum] += 1;
        acc.sum_r[sum] += u64::from(r);
        acc.sum_g[sum] += u64::from(g);

        let [h, s, _] = pillow_hsv(r, g, b);
        if s != 0 {
            let s64 = u64::from(s);
            acc.sat_sum += s64;
            acc.sat_sq_sum += s64 * s64;
            acc.hue_weight[usize::from(h)] += s64;
        }
        if HIST {
            acc.hue_sat[hue_sat_bin(h, s)] += 1;
        }
    }

    let n = n_px as u64;
    let nf = n as f64;
    let (w, h) = (width as usize, height as usize);

    // Luma moments, exact in integers.
    let (mut y_sum, mut y_sq) = (0u64, 0u64);
    for (v, &c) in acc.luma.iter().enumerate() {
        let v = v as u64;
        y_sum += v * c;
        y_sq += v * v * c;
    }
    let luma_mean = y_sum as f64 / nf / 255.0;
    let rms_contrast = exact_variance(n, i128::from(y_sum), u128::from(y_sq)).sqrt() / 255.0;

    let sat_mean = acc.sat_sum as f64 / nf / 255.0;
    let sat_std =
        exact_variance(n, i128::from(acc.sat_sum), u128::from(acc.sat_sq_sum)).sqrt() / 255.0;

    let (hue_circ_mean, hue_resultant_r) = circular_hue(&acc.hue_weight, acc.sat_sum);

    let (rgb_rel_r, rgb_rel_g, rgb_rel_b) = relative_rgb(&acc);

    let clip_low: u64 = acc.luma[..=usize::from(CLIP_LOW_MAX)].iter().sum();
    let clip_high: u64 = acc.luma[usize::from(CLIP_HIGH_MIN)..].iter().sum();

    let mut entropy = 0.0f64;
    for &c in &acc.luma {
        if c != 0 {
            let p = c as f64 / nf;
            entropy += p * -p.log2();
        }
    }

    let sharpness = laplacian_variance(&y_plane, w, h);

    let features = FrameFeatures {
        luma_mean,
        rms_contrast,
        sat_mean,
        sat_std,
        hue_circ_mean,
        hue_resultant_r,
        rgb_rel_r,
        rgb_rel_g,
        rgb_rel_b,
        clip_low: clip_low as f64 / nf,
        clip_high: clip_high as f64 / nf,
        sharpness,
        entropy,
        width: f64::from(width),
        height: f64::from(height),
        aspect: f64::from(width) / f64::from(height),
    };
    (features, acc)
}

/// Population variance `(n·Σx² − (Σx)²) / n²` from exact integer moments (`n > 0`).
fn exact_variance(n: u64, sum: i128, sum_sq: u128) -> f64 {
    let n128 = u128::from(n);
    let sq_of_sum = sum.unsigned_abs().checked_mul(sum.unsigned_abs());
    match (n128.checked_mul(sum_sq), sq_of_sum) {
        (Some(a), Some(b)) => {
            let num = a.saturating_sub(b);
            let nf = n as f64;
            num as f64 / (nf * nf)
        }
        // Unreachable for buffers that fit in memory; fall back to floats.
        _ => {
            let nf = n as f64;
            let mean = sum as f64 / nf;
            (sum_sq as f64 / nf - mean * mean).max(0.0)
        }
    }
}

/// Saturation-weighted circular mean (degrees in `[0, 360)`) and resultant length of the
/// 8-bit hue at `H·360/255` degrees.
fn circular_hue(hue_weight: &[u64; 256], weight_total: u64) -> (f64, f64) {
    if weight_total == 0 {
        return (0.0, 0.0);
    }
    let (mut c, mut s) = (0.0f64, 0.0f64);
    for (hv, &wt) in hue_weight.iter().enumerate() {
        if wt != 0 {
            let theta = hv as f64 * (TAU / 255.0);
            let wt = wt as f64;
            c += wt * theta.cos();
            s += wt * theta.sin();
        }
    }
    let r = (c.hypot(s) / weight_total as f64).min(1.0);
    let mut deg = s.atan2(c).to_degrees().rem_euclid(360.0);
    if deg >= 360.0 {
        // rem_euclid of a tiny negative angle rounds up to 360.
        deg = 0.0;
    }
    (deg, r)
}

/// Mean chromaticity `C / (R+G+B)` over pixels with a non-zero sum; 1/3 each if none.
fn relative_rgb(acc: &Accum) -> (f64, f64, f64) {
    let (mut rr, mut gg, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    let mut used = 0u64;
    for sum in 1..CHANNEL_SUMS {
        let count = acc.sum_count[sum];
        if count == 0 {
            continue;
        }
        used += count;
        let total = sum as u64 * count;
        let (r, g) = (acc.sum_r[sum], acc.sum_g[sum]);
        let b = total - r - g;
        let sf = sum as f64;
        rr += r as f64 / sf;
        gg += g as f64 / sf;
        bb += b as f64 / sf;
    }
    if used == 0 {
        let third = 1.0 / 3.0;
        return (third, third, third);
    }
    let u = used as f64;
    (rr / u, gg / u, bb / u)
}

/// Index of `i + d` (`d ∈ {-1, +1}`) under `BORDER_REFLECT_101` for a dimension of length `n`.
#[inline]
fn reflect101(i: usize, forward: bool, n: usize) -> usize {
    if n == 1 {
        0
    } else if forward {
        if i + 1 < n {
            i + 1
        } else {
            n - 2
        }
    } else if i == 0 {
        1
    } else {
        i - 1
    }
}

/// Variance (ddof = 0) of the 3×3 Laplacian of `y` (`w × h`, row-major) with
/// `BORDER_REFLECT_101`, from exact integer moments.
fn laplacian_variance(y: &[u8], w: usize, h: usize) -> f64 {
    let mut sum: i64 = 0;
    let mut sum_sq: u64 = 0;
    for j in 0..h {
        let up = &y[reflect101(j, false, h) * w..][..w];
        let cur = &y[j * w..][..w];
        let down = &y[reflect101(j, true, h) * w..][..w];
        // Edge columns (and every column when w < 3) through the reflecting index.
        let mut edge = |x: usize| {
            let v = i32::from(up[x])
                + i32::from(down[x])
                + i32::from(cur[reflect101(x, false, w)])
                + i32::from(cur[reflect101(x, true, w)])
                - 4 * i32::from(cur[x]);
            sum += i64::from(v);
            sum_sq += u64::from(v.unsigned_abs()).pow(2);
        };
        if w < 3 {
            (0..w).for_each(&mut edge);
            continue;
        }
        edge(0);
        edge(w - 1);
        let (s, q) = laplacian_row_interior(up, cur, down);
        sum += s;
        sum_sq += q;
    }
    let n = (w as u64) * (h as u64);
    exact_variance(n, i128::from(sum), u128::from(sum_sq))
}

/// Sum and sum of squares of the Laplacian over columns `1..w-1` (`w ≥ 3`). Blocks of 1024
/// columns keep 32-bit accumulators exact (`|v| ≤ 1020`, `v² ≤ 1_040_400`) and vectorisable.
fn laplacian_row_interior(up: &[u8], cur: &[u8], down: &[u8]) -> (i64, u64) {
    const BLOCK: usize = 1024;
    let w = cur.len();
    let (mut sum, mut sum_sq) = (0i64, 0u64);
    let mut start = 1;
    while start < w - 1 {
        let end = (start + BLOCK).min(w - 1);
        let (mut s, mut q) = (0i32, 0u32);
        let it = up[start..end]
            .iter()
            .zip(&down[start..end])
            .zip(&cur[start - 1..end - 1])
            .zip(&cur[start..end])
            .zip(&cur[start + 1..end + 1]);
        for ((((&u, &d), &l), &c), &r) in it {
            let v = i32::from(u) + i32::from(d) + i32::from(l) + i32::from(r) - 4 * i32::from(c);
            s += v;
            q += (v * v) as u32;
        }
        sum += i64::from(s);
        sum_sq += u64::from(q);
        start = end;
    }
    (sum, sum_sq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn solid(w: u32, h: u32, px: [u8; 3]) -> Vec<u8> {
        px.iter()
            .copied()
            .cycle()
            .take((w * h * 3) as usize)
            .collect()
    }

    fn assert_finite(f: &FrameFeatures) {
        for (name, v) in FrameFeatures::NAMES.iter().zip(f.values()) {
            assert!(v.is_finite(), "{name} = {v}");
        }
    }

    #[test]
    fn names_match_values_order() {
        let f = frame_features(&solid(4, 2, [10, 20, 30]), 4, 2).expect("valid");
        let v = f.values();
        assert_eq!(FrameFeatures::NAMES.len(), v.len());
        let json = serde_json::to_value(f).expect("serialise");
        for (name, value) in FrameFeatures::NAMES.iter().zip(v) {
            assert_eq!(json[name].as_f64(), Some(value), "{name}");
        }
    }

    #[test]
    fn luma_and_hsv_spot_values() {
        // Values from Pillow 11.3.
        assert_eq!(luma_601(255, 255, 255), 255);
        assert_eq!(luma_601(0, 0, 0), 0);
        assert_eq!(luma_601(255, 0, 0), 76);
        assert_eq!(luma_601(0, 255, 0), 150);
        assert_eq!(luma_601(0, 0, 255), 29);
        assert_eq!(pillow_hsv(255, 0, 0), [0, 255, 255]);
        assert_eq!(pillow_hsv(0, 255, 0), [85, 255, 255]);
        assert_eq!(pillow_hsv(0, 0, 255), [170, 255, 255]);
        assert_eq!(pillow_hsv(7, 7, 7), [0, 0, 7]);
    }

    #[test]
    fn grey_image_has_no_nan() {
        for v in [0u8, 1, 128, 255] {
            let f = frame_features(&solid(5, 3, [v, v, v]), 5, 3).expect("valid");
            assert_finite(&f);
            assert_eq!(f.hue_circ_mean, 0.0);
            assert_eq!(f.hue_resultant_r, 0.0);
            assert_eq!(f.sat_mean, 0.0);
            assert_eq!(f.sat_std, 0.0);
            assert_eq!(f.rms_contrast, 0.0);
            assert_eq!(f.sharpness, 0.0);
            assert_eq!(f.entropy, 0.0);
            assert!(f.entropy.is_sign_positive());
            assert_eq!(f.luma_mean, f64::from(v) / 255.0);
            let third = 1.0 / 3.0;
            assert!((f.rgb_rel_r - third).abs() < 1e-15);
            assert!((f.rgb_rel_g - third).abs() < 1e-15);
            assert!((f.rgb_rel_b - third).abs() < 1e-15);
            assert_eq!(f.clip_low, if v <= 5 { 1.0 } else { 0.0 });
            assert_eq!(f.clip_high, if v >= 250 { 1.0 } else { 0.0 });
        }
    }

    #[test]
    fn one_by_one_and_thin_images() {
        for (w, h) in [(1u32, 1u32), (1, 7), (7, 1), (2, 2)] {
            let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 256) as u8).collect();
            let f = frame_features(&rgb, w, h).expect("valid");
            assert_finite(&f);
            assert_eq!(f.aspect, f64::from(w) / f64::from(h));
        }
    }

    /// Colours at hue 350° and 10°, full saturation and value.
    fn hue_wrap_image() -> Vec<u8> {
        // 350°: R max, B = 255·10/60 ≈ 43; 10°: R max, G ≈ 43.
        let mut rgb = Vec::new();
        for i in 0..64 {
            rgb.extend_from_slice(if i % 2 == 0 {
                &[255, 0, 43]
            } else {
                &[255, 43, 0]
            });
        }
        rgb
    }

    #[test]
    fn hue_wraps_around_zero() {
        let f = frame_features(&hue_wrap_image(), 8, 8).expect("valid");
        // Pillow's H for these pixels is 247 and 7: 347.3° and 9.8° under H·360/255.
        assert_eq!(pillow_hsv(255, 0, 43)[0], 247);
        assert_eq!(pillow_hsv(255, 43, 0)[0], 7);
        let dist = f.hue_circ_mean.min(360.0 - f.hue_circ_mean);
        assert!(dist < 2.0, "hue_circ_mean = {}", f.hue_circ_mean);
        assert!(f.hue_resultant_r > 0.95, "R = {}", f.hue_resultant_r);
        assert!((0.0..360.0).contains(&f.hue_circ_mean));
        // A linear mean would have been near 180°.
    }

    #[test]
    fn single_hue_has_unit_resultant() {
        let f = frame_features(&solid(3, 3, [0, 200, 0]), 3, 3).expect("valid");
        assert!(f.hue_resultant_r <= 1.0);
        assert!((f.hue_resultant_r - 1.0).abs() < 1e-12);
        assert!((f.hue_circ_mean - 85.0 * HUE_DEGREES_PER_STEP).abs() < 1e-9);
    }

    #[test]
    fn all_black_rgb_rel_is_one_third() {
        let f = frame_features(&solid(2, 2, [0, 0, 0]), 2, 2).expect("valid");
        assert_eq!(f.rgb_rel_r, 1.0 / 3.0);
        assert_eq!(f.rgb_rel_g, 1.0 / 3.0);
        assert_eq!(f.rgb_rel_b, 1.0 / 3.0);
        // One black pixel among reds is skipped.
        let mut rgb = solid(2, 1, [200, 0, 0]);
        rgb[..3].fill(0);
        let f = frame_features(&rgb, 2, 1).expect("valid");
        assert_eq!((f.rgb_rel_r, f.rgb_rel_g, f.rgb_rel_b), (1.0, 0.0, 0.0));
    }

    #[test]
    fn wrong_buffer_length_errors() {
        let rgb = vec![0u8; 4 * 3 * 3];
        assert_eq!(
            frame_features(&rgb[..35], 4, 3),
            Err(ImageError::BufferLength {
                width: 4,
                height: 3,
                expected: 36,
                actual: 35
            })
        );
        assert!(matches!(
            frame_features(&rgb, 4, 4),
            Err(ImageError::BufferLength { .. })
        ));
        assert_eq!(
            frame_features(&[], 0, 3),
            Err(ImageError::ZeroSize {
                width: 0,
                height: 3
            })
        );
        assert!(matches!(
            frame_features(&[], 5, 0),
            Err(ImageError::ZeroSize { .. })
        ));
        let mut hist = ImageHistograms::new();
        assert!(frame_features_with_histograms(&rgb, 5, 3, &mut hist).is_err());
        assert!(hist.add_frame(&rgb, 3, 3).is_err());
        assert_eq!(hist, ImageHistograms::new());
        let msg = frame_features(&rgb[..35], 4, 3)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("36"), "{msg}");
    }

    #[test]
    fn laplacian_matches_naive_reflect101() {
        // Non-square, odd sizes: compare against a direct reflect-101 convolution.
        let (w, h) = (7usize, 5usize);
        let y: Vec<u8> = (0..w * h).map(|i| ((i * 73 + 11) % 256) as u8).collect();
        let refl = |i: isize, n: usize| -> usize {
            let n = n as isize;
            if i < 0 {
                (-i) as usize
            } else if i >= n {
                (2 * n - 2 - i) as usize
            } else {
                i as usize
            }
        };
        let mut vals = Vec::new();
        for j in 0..h as isize {
            for x in 0..w as isize {
                let at = |jj: isize, xx: isize| f64::from(y[refl(jj, h) * w + refl(xx, w)]);
                vals.push(
                    at(j - 1, x) + at(j + 1, x) + at(j, x - 1) + at(j, x + 1) - 4.0 * at(j, x),
                );
            }
        }
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        let got = laplacian_variance(&y, w, h);
        assert!((got - var).abs() <= 1e-9 * var, "{got} vs {var}");
    }

    #[test]
    fn laplacian_values_from_opencv() {
        // cv2.Laplacian(y, cv2.CV_64F).var() for y = arange * 37 % 256.
        let y: Vec<u8> = (0..5).map(|i| (i * 37) as u8).collect();
        assert!((laplacian_variance(&y, 5, 1) - 2190.4).abs() < 1e-9);
        assert!((laplacian_variance(&y, 1, 5) - 2190.4).abs() < 1e-9);
        let y: Vec<u8> = (0..6).map(|i| (i * 37) as u8).collect();
        assert!((laplacian_variance(&y, 3, 2) - 52934.666666666664).abs() < 1e-9);
        assert_eq!(laplacian_variance(&[9], 1, 1), 0.0);
    }

    #[test]
    fn default_histograms_have_full_shape_and_serde_checks_it() {
        let h = ImageHistograms::default();
        assert_eq!(h.luma.len(), LUMA_BINS);
        assert_eq!(h.hue_sat.len(), HUE_SAT_BINS);
        assert!(h.is_empty());
        assert_eq!(h.luma_proportions(), vec![0.0; LUMA_BINS]);
        let json = serde_json::to_string(&h).expect("serialise");
        let back: ImageHistograms = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, h);
        let bad = r#"{"luma": [1, 2], "hue_sat": []}"#;
        assert!(serde_json::from_str::<ImageHistograms>(bad).is_err());
    }

    #[test]
    fn merge_pads_short_histograms() {
        let mut short = ImageHistograms {
            luma: Vec::new(),
            hue_sat: Vec::new(),
        };
        let full = ImageHistograms::from_frame(&solid(2, 2, [1, 2, 3]), 2, 2).expect("valid");
        short.merge(&full);
        assert_eq!(short, full);
    }

    fn image_strategy() -> impl Strategy<Value = (u32, u32, Vec<u8>)> {
        (1u32..12, 1u32..12).prop_flat_map(|(w, h)| {
            (
                Just(w),
                Just(h),
                proptest::collection::vec(any::<u8>(), (w * h * 3) as usize),
            )
        })
    }

    fn hist_strategy() -> impl Strategy<Value = ImageHistograms> {
        (
            proptest::collection::vec(0u64..1_000_000, LUMA_BINS),
            proptest::collection::vec(0u64..1_000_000, HUE_SAT_BINS),
        )
            .prop_map(|(luma, hue_sat)| ImageHistograms { luma, hue_sat })
    }

    proptest! {
        #[test]
        fn merge_is_associative_commutative_with_identity(
            a in hist_strategy(), b in hist_strategy(), c in hist_strategy()
        ) {
            let ab_c = a.clone().merged(&b).merged(&c);
            let a_bc = a.clone().merged(&b.clone().merged(&c));
            prop_assert_eq!(&ab_c, &a_bc);
            prop_assert_eq!(a.clone().merged(&b), b.clone().merged(&a));
            prop_assert_eq!(a.clone().merged(&ImageHistograms::default()), a.clone());
            prop_assert_eq!(ImageHistograms::default().merged(&a), a);
        }

        #[test]
        fn merged_frames_equal_histogram_of_union(
            (w1, h1, p1) in image_strategy(), (w2, h2, p2) in image_strategy()
        ) {
            let a = ImageHistograms::from_frame(&p1, w1, h1).expect("valid");
            let b = ImageHistograms::from_frame(&p2, w2, h2).expect("valid");
            // Histograms ignore layout: both frames stacked as one 1-pixel-high strip.
            let mut union = p1.clone();
            union.extend_from_slice(&p2);
            let u = ImageHistograms::from_frame(&union, w1 * h1 + w2 * h2, 1).expect("valid");
            prop_assert_eq!(a.clone().merged(&b), u.clone());
            prop_assert_eq!(u.pixel_count(), u64::from(w1 * h1 + w2 * h2));
            let sum: f64 = u.hue_sat_proportions().iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-12);
            let sum: f64 = u.luma_proportions().iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-12);

            // The combined pass gives the same features and the same histograms.
            let mut hist = ImageHistograms::default();
            let f1 = frame_features_with_histograms(&p1, w1, h1, &mut hist).expect("valid");
            let f2 = frame_features_with_histograms(&p2, w2, h2, &mut hist).expect("valid");
            prop_assert_eq!(f1, frame_features(&p1, w1, h1).expect("valid"));
            prop_assert_eq!(f2, frame_features(&p2, w2, h2).expect("valid"));
            prop_assert_eq!(hist, a.merged(&b));
        }

        #[test]
        fn features_are_finite_and_in_range((w, h, p) in image_strategy()) {
            let f = frame_features(&p, w, h).expect("valid");
            assert_finite(&f);
            for v in [f.luma_mean, f.rms_contrast, f.sat_mean, f.sat_std, f.hue_resultant_r,
                      f.rgb_rel_r, f.rgb_rel_g, f.rgb_rel_b, f.clip_low, f.clip_high] {
                prop_assert!((0.0..=1.0).contains(&v), "{}", v);
            }
            prop_assert!((0.0..360.0).contains(&f.hue_circ_mean));
            prop_assert!((0.0..=8.0).contains(&f.entropy));
            prop_assert!(f.sharpness >= 0.0);
            prop_assert!((f.rgb_rel_r + f.rgb_rel_g + f.rgb_rel_b - 1.0).abs() < 1e-12);
        }
    }
}
