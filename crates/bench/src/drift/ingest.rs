//! Stage 1, ingest: numeric values into a `SegmentSummary` the way the sidecar adds them
//! (`record_hash` per row, `SegmentSummary::add` per feature), on one thread, against a
//! plain loop summing the same values; per-value breakdown; the sidecar's own pane path
//! (`PartitionPanes::admit` + `add`) and a records stream's decode and field mapping.
use super::data::{draw, median_secs, profile_of, Lcg, BENCH_TOPIC, CAMERAS};
use super::DriftBenchOptions;
use crate::error::{runtime, BenchError};
use crate::harness::verdict;
use argus_drift::features::field_cell;
use argus_drift::pane::{PaneConfig, PartitionPanes};
use argus_stats::hash::{record_hash, Sampler};
use argus_stats::numeric::{Binning, BottomK, NumericSummary, Welford};
use argus_stats::profile::{Profile, ProfileSettings, SegmentProfile};
use argus_stats::summary::{Cell, SegmentSummary};
use argus_wire::{decode_envelope, encode_envelope, Envelope, Field, Payload, Value};
use serde::Serialize;
use std::collections::HashMap;
use std::hint::black_box;

/// ns per value of each part of `SegmentSummary::add`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct IngestBreakdown {
    /// Reading the values and adding them to per-feature accumulators (the baseline loop).
    pub read_floor: f64,
    /// `record_hash` once per row, divided by the row's features.
    pub record_hash: f64,
    /// `Binning::bin` (binary search on the reference's fine edges), beyond the floor.
    pub binning: f64,
    /// `Welford::add`, beyond the floor.
    pub welford: f64,
    /// `BottomK::add` with the row's hash, beyond the floor.
    pub bottom_k: f64,
    /// The rest of `NumericSummary::add`: min/max, counters, range checks (its loop, net of
    /// the floor, minus binning, Welford and bottom-k).
    pub numeric_rest: f64,
    /// `SegmentSummary::add` over `NumericSummary::add`: the per-value dispatch (feature
    /// and reference lookup, `Cell` match) and `n_records`.
    pub dispatch: f64,
}

/// Stage 1 for one feature count.
#[derive(Debug, Clone, Serialize)]
pub(super) struct IngestResult {
    pub features: usize,
    pub rows: u64,
    pub values: u64,
    pub passes: usize,
    /// Plain loop summing the same values into per-feature accumulators.
    pub baseline_values_per_s: f64,
    /// `record_hash` per row + `SegmentSummary::add` per feature, one thread.
    pub summary_values_per_s: f64,
    pub summary_ns_per_value: f64,
    /// summary rate ÷ baseline rate.
    pub summary_over_baseline: f64,
    /// ns per value of each part (medians of separate loops over the same data).
    pub breakdown_ns_per_value: IngestBreakdown,
    /// `PartitionPanes::admit` + `PartitionPanes::add` per row (the sidecar's own code; each
    /// row goes to the fleet `*` and to its camera's summary, so every value is summarised
    /// twice), values offered per second.
    pub pane_path_values_per_s: f64,
    /// A records stream's per-row work before the summaries, per value: `decode_envelope` of
    /// a `Payload::Record` with `features` float fields ...
    pub record_decode_ns_per_value: f64,
    /// ... and the field → feature-index mapping of `sidecar.rs` (replicated here: a HashMap
    /// lookup per field plus a linear search of the row's cells, then a sort).
    pub record_mapping_ns_per_value: f64,
    pub record_rows_measured: u64,
}

pub(super) fn stage1(
    args: &DriftBenchOptions,
    full: &SegmentProfile,
    settings: &ProfileSettings,
) -> Result<Vec<IngestResult>, BenchError> {
    println!();
    println!(
        "stage 1  ingest: record_hash per row + SegmentSummary::add per feature, one thread, {} rows, median of {} passes",
        args.rows, args.ingest_passes
    );
    let mut out = Vec::new();
    for &f in &args.ingest_features {
        out.push(ingest_one(args, full, settings, f)?);
    }
    println!(
        "  {:>8} {:>12} {:>12} {:>10} {:>9} {:>12} | ns/value: {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} | {:>12} {:>8} {:>8}",
        "features", "baseline v/s", "summary v/s", "ns/value", "sum/base", "target 5M/s",
        "read", "hash", "bin", "welf", "botk", "rest", "disp",
        "pane path v/s", "rec dec", "rec map"
    );
    for r in &out {
        let bd = &r.breakdown_ns_per_value;
        println!(
            "  {:>8} {:>12} {:>12} {:>10.2} {:>9.3} {:>12} | {:>15.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} | {:>12} {:>8.1} {:>8.1}",
            r.features,
            millions(r.baseline_values_per_s),
            millions(r.summary_values_per_s),
            r.summary_ns_per_value,
            r.summary_over_baseline,
            verdict(r.summary_values_per_s >= 5e6).trim(),
            bd.read_floor,
            bd.record_hash,
            bd.binning,
            bd.welford,
            bd.bottom_k,
            bd.numeric_rest,
            bd.dispatch,
            millions(r.pane_path_values_per_s),
            r.record_decode_ns_per_value,
            r.record_mapping_ns_per_value,
        );
    }
    println!("  (v/s = numeric values per second; breakdown parts are separate loops, each net of the read floor; rest = NumericSummary::add's min/max/counters; disp = SegmentSummary::add's dispatch over NumericSummary::add; pane path = PartitionPanes::admit+add, fleet + camera summary per row; rec dec/map = a records stream's decode_envelope and field mapping per value, before any summary)");
    Ok(out)
}

fn millions(v: f64) -> String {
    format!("{:.1}M", v / 1e6)
}

/// Median seconds of each loop over the same rows.
#[derive(Debug)]
struct Loops {
    floor: f64,
    summary: f64,
    hash: f64,
    binning: f64,
    welford: f64,
    bottom_k: f64,
    numeric: f64,
}

/// A records stream's decode, and decode plus field mapping, median seconds.
#[derive(Debug)]
struct RecordPath {
    rows: u64,
    decode: f64,
    decode_and_map: f64,
}

/// The data of one feature count: a block of values cycled through, the row hashes, and
/// the reference's binnings.
#[derive(Debug)]
struct Ingest<'a> {
    profile: &'a Profile,
    seg: &'a SegmentProfile,
    f: usize,
    rows: u64,
    passes: usize,
    seed: u64,
    k: usize,
    block_rows: usize,
    block: Vec<f64>,
    hashes: Vec<u64>,
    binnings: Vec<&'a Binning>,
}

pub(super) fn ingest_one(
    args: &DriftBenchOptions,
    full: &SegmentProfile,
    settings: &ProfileSettings,
    f: usize,
) -> Result<IngestResult, BenchError> {
    let profile = profile_of(full, f, settings)?;
    let ingest = Ingest::new(&profile, args, settings)?;
    let (f, rows, passes) = (ingest.f, ingest.rows, ingest.passes);
    let l = ingest.summary_loops();
    let pane_path = ingest.pane_path();
    let rec = ingest.record_path()?;
    let values = rows * f as u64;
    let per_value = |secs: f64| secs * 1e9 / values as f64;
    let record_values = rec.rows * f as u64;
    let floor_ns = per_value(l.floor);
    let net = |secs: f64| (per_value(secs) - floor_ns).max(0.0);
    let summary_ns = per_value(l.summary);
    let hash_ns = per_value(l.hash);
    let (bin_ns, welford_ns, bottom_ns) = (net(l.binning), net(l.welford), net(l.bottom_k));
    let numeric_ns = per_value(l.numeric);
    Ok(IngestResult {
        features: f,
        rows,
        values,
        passes,
        baseline_values_per_s: values as f64 / l.floor,
        summary_values_per_s: values as f64 / l.summary,
        summary_ns_per_value: summary_ns,
        summary_over_baseline: l.floor / l.summary,
        breakdown_ns_per_value: IngestBreakdown {
            read_floor: floor_ns,
            record_hash: hash_ns,
            binning: bin_ns,
            welford: welford_ns,
            bottom_k: bottom_ns,
            numeric_rest: numeric_ns - floor_ns - hash_ns - bin_ns - welford_ns - bottom_ns,
            dispatch: summary_ns - numeric_ns,
        },
        pane_path_values_per_s: values as f64 / pane_path,
        record_decode_ns_per_value: rec.decode * 1e9 / record_values as f64,
        record_mapping_ns_per_value: (rec.decode_and_map - rec.decode).max(0.0) * 1e9
            / record_values as f64,
        record_rows_measured: rec.rows,
    })
}

impl<'a> Ingest<'a> {
    fn new(
        profile: &'a Profile,
        args: &DriftBenchOptions,
        settings: &ProfileSettings,
    ) -> Result<Self, BenchError> {
        let seg = profile.fleet();
        let f = seg.features.len();
        let rows = args.rows;
        let seed = settings.seed;
        // At most 16M values (128 MB) are held; longer runs cycle through them.
        let block_rows = usize::try_from(rows)
            .unwrap_or(usize::MAX)
            .min((16 << 20) / f)
            .max(1);
        let mut rng = Lcg::new(7);
        let block: Vec<f64> = (0..block_rows * f).map(|i| draw(&mut rng, i % f)).collect();
        let hashes: Vec<u64> = (0..rows)
            .map(|r| record_hash(seed, BENCH_TOPIC, 0, r as i64))
            .collect();
        let binnings: Vec<&Binning> = seg
            .features
            .iter()
            .filter_map(|p| p.numeric.as_ref().map(|n| &n.binning))
            .collect();
        if binnings.len() != f {
            return Err(runtime("a synthetic feature was not profiled as numeric"));
        }
        Ok(Ingest {
            profile,
            seg,
            f,
            rows,
            passes: args.ingest_passes,
            seed,
            k: settings.sample_k,
            block_rows,
            block,
            hashes,
            binnings,
        })
    }

    /// The values of row `r`.
    #[inline]
    fn row(&self, r: u64) -> &[f64] {
        let i = (r % self.block_rows as u64) as usize * self.f;
        &self.block[i..i + self.f]
    }

    /// The baseline loop, the summary loop, and one loop per part of the summary.
    fn summary_loops(&self) -> Loops {
        let (f, rows, passes, seed, k, seg) =
            (self.f, self.rows, self.passes, self.seed, self.k, self.seg);
        let row = |r: u64| self.row(r);
        let binnings = &self.binnings;
        let floor = median_secs(passes, || {
            let mut acc = vec![0.0f64; f];
            for r in 0..rows {
                for (a, x) in acc.iter_mut().zip(black_box(row(r))) {
                    *a += x;
                }
            }
            black_box(&acc);
        });
        let summary = median_secs(passes, || {
            let mut s = SegmentSummary::new(seg, None, k);
            for r in 0..rows {
                let h = record_hash(seed, BENCH_TOPIC, 0, r as i64);
                s.n_records += 1;
                for (j, x) in black_box(row(r)).iter().enumerate() {
                    s.add(seg, j, Cell::Num(*x), h);
                }
            }
            black_box(&s);
        });
        let hash = median_secs(passes, || {
            let mut acc = 0u64;
            for r in 0..rows {
                acc ^= record_hash(seed, BENCH_TOPIC, 0, black_box(r as i64));
            }
            black_box(acc);
        });
        let binning = median_secs(passes, || {
            let mut acc = 0usize;
            for r in 0..rows {
                for (bn, x) in binnings.iter().zip(black_box(row(r))) {
                    acc = acc.wrapping_add(bn.bin(*x));
                }
            }
            black_box(acc);
        });
        let welford = median_secs(passes, || {
            let mut w = vec![Welford::default(); f];
            for r in 0..rows {
                for (w, x) in w.iter_mut().zip(black_box(row(r))) {
                    w.add(*x);
                }
            }
            black_box(&w);
        });
        let bottom_k = median_secs(passes, || {
            let mut bk = vec![BottomK::new(k); f];
            for (r, h) in self.hashes.iter().enumerate() {
                for (s, x) in bk.iter_mut().zip(black_box(row(r as u64))) {
                    s.add(*h, *x);
                }
            }
            black_box(&bk);
        });
        let numeric = median_secs(passes, || {
            let mut ns: Vec<NumericSummary> = binnings
                .iter()
                .map(|bn| NumericSummary::new(bn, k))
                .collect();
            for r in 0..rows {
                let h = record_hash(seed, BENCH_TOPIC, 0, r as i64);
                for ((s, bn), x) in ns.iter_mut().zip(binnings).zip(black_box(row(r))) {
                    s.add(bn, Some(*x), h);
                }
            }
            black_box(&ns);
        });
        Loops {
            floor,
            summary,
            hash,
            binning,
            welford,
            bottom_k,
            numeric,
        }
    }

    /// `PartitionPanes::admit` + `add` per row, median seconds.
    fn pane_path(&self) -> f64 {
        let cfg = PaneConfig {
            pane_us: 3_600_000_000,
            lateness_us: 0,
            sampler: Sampler::new(1.0),
            max_fps: 0.0,
            max_segments: 200,
            seed: self.seed,
        };
        median_secs(self.passes, || {
            let mut pp = PartitionPanes::new(BENCH_TOPIC, 0, None);
            for r in 0..self.rows {
                let offset = r as i64;
                let camera = CAMERAS[(r % 4) as usize];
                // One row per millisecond of event time: every row lands in the first pane.
                let (_, pane) = pp.admit(&cfg, offset, offset * 1000, Some(camera), true);
                let cells: Vec<(usize, Cell<'_>)> = black_box(self.row(r))
                    .iter()
                    .enumerate()
                    .map(|(j, x)| (j, Cell::Num(*x)))
                    .collect();
                pp.add(
                    self.profile,
                    &cfg,
                    pane,
                    offset,
                    Some(camera),
                    &cells,
                    None,
                    None,
                );
            }
            black_box(&pp);
        })
    }

    /// A records stream: decode + field mapping, as sidecar.rs does before
    /// `PartitionPanes::add`.
    fn record_path(&self) -> Result<RecordPath, BenchError> {
        let names: Vec<String> = self.seg.features.iter().map(|p| p.name.clone()).collect();
        let encoded: Vec<Vec<u8>> = (0..self.block_rows.min(1024))
            .map(|r| {
                encode_envelope(&Envelope {
                    schema_version: argus_wire::SCHEMA_VERSION,
                    source_id: CAMERAS[r % 4].to_owned(),
                    sequence: r as u64,
                    capture_time_us: r as i64 * 1000,
                    payload: Payload::Record(argus_wire::Record {
                        fields: names
                            .iter()
                            .zip(self.row(r as u64))
                            .map(|(n, x)| Field {
                                name: n.as_str().into(),
                                value: Value::Float(*x),
                            })
                            .collect(),
                    }),
                })
                .map_err(runtime)
            })
            .collect::<Result<_, _>>()?;
        let layout: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let record_rows = self.rows.min(200_000);
        let decode = median_secs(self.passes, || {
            for r in 0..record_rows {
                let e = decode_envelope(black_box(&encoded[(r % encoded.len() as u64) as usize]));
                black_box(&e);
            }
        });
        let decode_and_map = median_secs(self.passes, || {
            for r in 0..record_rows {
                let Ok(env) =
                    decode_envelope(black_box(&encoded[(r % encoded.len() as u64) as usize]))
                else {
                    continue;
                };
                let Payload::Record(rec) = &env.payload else {
                    continue;
                };
                // sidecar.rs, handle_record, StreamKind::Records (before its index-based mapping).
                let mut values: Vec<(usize, Cell<'_>)> =
                    layout.values().map(|i| (*i, Cell::Null)).collect();
                for fl in &rec.fields {
                    if let Some(i) = layout.get(fl.name.as_str()) {
                        if let Some(slot) = values.iter_mut().find(|(j, _)| j == i) {
                            slot.1 = field_cell(&fl.value);
                        }
                    }
                }
                values.sort_by_key(|v| v.0);
                black_box(&values);
            }
        });
        Ok(RecordPath {
            rows: record_rows,
            decode,
            decode_and_map,
        })
    }
}
