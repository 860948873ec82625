//! Stages 1 and 2, without Kafka: the engine alone on preprocessed tensors per batch size,
//! and the offline pipeline (envelope bytes → decode → classify) from memory on N threads.
use super::report::{BatchResult, OfflineResult};
use crate::error::{runtime, BenchError};
use crate::harness::cpu::{cpu_busy, CpuMark};
use crate::harness::{envelope_bytes, micros, percentile};
use argus_model::{Classifier, Prepared};
use argus_producer::Frame;
use argus_wire::{decode_envelope, now_us};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) fn bench_tract(
    model: &Classifier,
    pool: &[Frame],
    sizes: &[usize],
    per_size: Duration,
) -> Result<Vec<BatchResult>, BenchError> {
    let prepared: Vec<Prepared> = pool
        .iter()
        .map(|f| model.prepare(&f.envelope.payload))
        .collect::<Result<_, _>>()
        .map_err(runtime)?;
    let mut out: Vec<BatchResult> = Vec::new();
    for &n in sizes {
        if let Err(e) = model.warm(n) {
            if n == 1 {
                return Err(runtime(e));
            }
            // A model exported for batch 1 (the person detector) cannot take larger ones.
            println!("  batch {n}: not measured, the model cannot run it ({e})");
            break;
        }
        let batch = |k: usize| {
            (0..n)
                .map(|j| prepared[(k + j) % prepared.len()].data.as_slice())
                .collect::<Vec<&[f32]>>()
        };
        for k in 0..3 {
            model.infer(&batch(k * n)).map_err(runtime)?;
        }
        let mut calls: Vec<f64> = Vec::new();
        let cpu_start = CpuMark::now(None);
        let start = Instant::now();
        let mut k = 0;
        while start.elapsed() < per_size || calls.len() < 10 {
            let inputs = batch(k);
            k += n;
            let t = Instant::now();
            model.infer(&inputs).map_err(runtime)?;
            calls.push(micros(t.elapsed()));
        }
        let cpu = cpu_start.until(&CpuMark::now(None), (calls.len() * n) as u64);
        let total_us: f64 = calls.iter().sum();
        let count = calls.len();
        calls.sort_by(f64::total_cmp);
        let p50 = percentile(&calls, 0.5);
        let per_input = p50 / n as f64;
        let base = out
            .iter()
            .find(|b| b.batch == 1)
            .map_or(per_input, |b| b.p50_per_input_us);
        out.push(BatchResult {
            batch: n,
            calls: count,
            inputs_per_s: (count * n) as f64 / (total_us / 1e6),
            p50_call_us: p50,
            p50_per_input_us: per_input,
            relative_to_batch_1: per_input / base,
            cpu_ms_per_input: cpu.bench_process_cpu_ms_per_input,
        });
    }
    Ok(out)
}

pub(crate) fn print_tract(tract: &[BatchResult]) {
    println!();
    println!(
        "stage 1  engine alone: Classifier::infer on preprocessed tensors in memory, 1 thread"
    );
    println!(
        "  {:>5} {:>8} {:>11} {:>12} {:>13} {:>11} {:>14}",
        "batch", "calls", "inputs/s", "p50/call µs", "p50/input µs", "vs batch 1", "CPU ms/input"
    );
    for b in tract {
        println!(
            "  {:>5} {:>8} {:>11.0} {:>12.1} {:>13.2} {:>11.2} {:>14}",
            b.batch,
            b.calls,
            b.inputs_per_s,
            b.p50_call_us,
            b.p50_per_input_us,
            b.relative_to_batch_1,
            b.cpu_ms_per_input
                .map_or_else(|| "n/a".into(), |c| format!("{c:.2}"))
        );
    }
}

pub(crate) fn bench_offline(
    model: &Classifier,
    pool: &[Frame],
    frames: u64,
    threads: usize,
    broker_pid: Option<u32>,
) -> Result<OfflineResult, BenchError> {
    let envelopes: Vec<Vec<u8>> = pool
        .iter()
        .enumerate()
        .map(|(i, f)| envelope_bytes(f, i as u64, now_us()))
        .collect::<Result<_, _>>()?;
    // Warm-up outside the timing: caches, allocator.
    for e in envelopes.iter().take(8) {
        let env = decode_envelope(e).map_err(runtime)?;
        model.classify(&env.payload).map_err(runtime)?;
    }
    let next = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let mark = CpuMark::now(broker_pid);
    let cpu = mark.machine;
    let start = Instant::now();
    let mut per_input: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut times = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= frames {
                            break;
                        }
                        let bytes = &envelopes[(i % envelopes.len() as u64) as usize];
                        let t = Instant::now();
                        let ok = decode_envelope(bytes)
                            .ok()
                            .and_then(|e| model.classify(&e.payload).ok())
                            .is_some();
                        times.push(micros(t.elapsed()));
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    times
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let end = CpuMark::now(broker_pid);
    let machine_cpu_busy = cpu_busy(cpu, end.machine);
    per_input.sort_by(f64::total_cmp);
    if per_input.len() as u64 != frames {
        return Err(runtime("an offline pipeline thread failed"));
    }
    Ok(OfflineResult {
        threads,
        inputs: frames,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        inputs_per_s: frames as f64 / seconds,
        p50_per_input_us: percentile(&per_input, 0.5),
        machine_cpu_busy,
        cpu: mark.until(&end, frames),
    })
}
