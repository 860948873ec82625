//! `argus produce`: sources to a topic.
use crate::cli::{ProduceArgs, SourceArgs};
use crate::config::ArgusConfig;
use crate::{shutdown, CliError};
use argus_producer::{DirSource, ProduceConfig, Source};

/// A checked video source: a bad setting or a missing file is a usage error (exit 64).
fn video(src: argus_producer::VideoSource) -> Result<Source, CliError> {
    src.check().map_err(CliError::Usage)?;
    Ok(Source::Video(src))
}

/// `args` for the source; everything else from `config` (`[kafka]`, `[producer]`), which
/// the flags of `args` are already merged into.
pub async fn run(args: ProduceArgs, config: ArgusConfig) -> Result<(), CliError> {
    let p = &config.producer;
    let source = match &args.source {
        SourceArgs::Synthetic(s) => Source::Synthetic(s.source(&p.synthetic)),
        SourceArgs::Dir(d) => {
            let src = DirSource {
                path: d.path.clone(),
                camera: d.camera.clone(),
                fps: d.fps,
                looped: d.looped,
            };
            src.files().map_err(CliError::Usage)?;
            if !d.fps.is_finite() || d.fps <= 0.0 {
                return Err(CliError::Usage("--fps must be > 0".into()));
            }
            Source::Dir(src)
        }
        SourceArgs::Records(r) => {
            let mut src = argus_producer::RecordsSource::new(&r.path, r.format, &r.key)
                .map_err(CliError::Usage)?;
            src.types = r.types.clone();
            src.infer_rows = r.infer_rows;
            // A file's header, key column and declared types are checked before connecting
            // (stdin can be read only once: the produce loop checks it).
            if src.path.is_some() {
                argus_producer::records::open(&src).map_err(CliError::Usage)?;
            }
            Source::Records(src)
        }
        SourceArgs::Video(v) => {
            let name = v
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "video".into());
            let mut src = v.common.source(v.path.display().to_string(), &name);
            src.looped = v.looped;
            src.realtime = v.realtime;
            video(src)?
        }
        SourceArgs::Rtsp(r) => {
            let mut src = r.common.source(r.url.clone(), "rtsp");
            src.rtsp_transport = r.transport;
            video(src)?
        }
        SourceArgs::Mjpeg(m) => {
            let mut src = m.common.source(m.url.clone(), "mjpeg");
            src.format = if m.snapshot {
                argus_producer::VideoFormat::Snapshot
            } else {
                argus_producer::VideoFormat::Mjpeg
            };
            video(src)?
        }
    };
    let mut produce = ProduceConfig::new(&p.topic);
    produce.count = p.count;
    produce.duration = p.duration;
    produce.rate_limit = p.rate_limit;
    produce.max_message_bytes = p.max_message_bytes;
    produce.backlog_bytes = p.backlog_bytes;
    if let SourceArgs::Records(r) = &args.source {
        if r.on_bad_row == "fail" {
            produce.bad_rows = argus_producer::BadRows::Fail;
        }
        produce.label_column = r.label_column.clone();
        produce.label_map = r.label_map.clone();
    }
    if let Some(topic) = &args.labels_topic {
        if !(args.label_share > 0.0 && args.label_share <= 1.0) {
            return Err(CliError::Usage("--label-share must be in (0, 1]".into()));
        }
        if matches!(
            &args.source,
            SourceArgs::Dir(_) | SourceArgs::Video(_) | SourceArgs::Rtsp(_) | SourceArgs::Mjpeg(_)
        ) {
            return Err(CliError::Usage(
                "--labels-topic needs a source that knows the truth: synthetic, or records with --label-column".into(),
            ));
        }
        produce.labels = Some(argus_producer::LabelEmission {
            topic: topic.clone(),
            share: args.label_share,
            delay: args.label_delay,
        });
    }
    let settings = config
        .kafka
        .settings()
        .with("message.max.bytes", p.max_message_bytes.to_string());
    crate::work::preflight(&settings).await?;
    let producer = settings
        .producer("argus-producer")
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let shutdown = shutdown::on_signal();
    let summary = match argus_producer::run(source, produce, producer, shutdown).await {
        Ok(s) => s,
        // Bad input data: EX_DATAERR.
        // The source cannot be read as given (stdin's header, a folder): configuration.
        Err(argus_producer::ProduceError::Source(m)) => return Err(CliError::Usage(m)),
        Err(e @ argus_producer::ProduceError::BadRow(_)) => {
            return Err(CliError::Data(e.to_string()))
        }
        Err(e) => return Err(CliError::Runtime(e.into())),
    };
    println!("{summary}");
    // Frames dropped by the outage policy are the documented behaviour of a live source
    // facing an outage (counted, logged, in the summary), not a failed run.
    if summary.failed > 0 || summary.refused > 0 {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "{} frames failed and {} were refused; see the log above",
            summary.failed,
            summary.refused
        )));
    }
    Ok(())
}
