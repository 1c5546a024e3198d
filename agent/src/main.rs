//! `canh`: the agent daemon and its command line.
//!
//! - `canh run --config FILE`: the daemon; SIGINT/SIGTERM stop it within [`SHUTDOWN_LIMIT`],
//!   exit code 3 when something stuck (a camera's source) had to be left behind.
//! - `canh check --config FILE`: validate a site file; exit code 2 when it has errors.
//! - `canh replay --input CLIP …`: count, check rules and watch for fire on a clip as fast as
//!   possible, print the events and a JSON summary; `--render DIR` writes what the agent sees as
//!   PNG frames; `--fire` watches a clip for fire without a config.
//! - `canh listen --broker URL --prefix P`: the reference IOC consumer; validates, de-duplicates
//!   and stores what a site publishes, one line per message.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;

use std::collections::BTreeMap;

use canh::agent::{DaemonOptions, FireSummary, Mode, PlateSummary, ReplayOptions, RunSummary, run_site};
use canh::analytics::fire::FireConfig;
use canh::analytics::signal::SignalLogEntry;
use canh::analytics::{CONFIRM_FRAMES, LineConfig, LineCounts};
use canh::config::{CameraConfig, ConfigErrors, Resources, SiteConfig, redact_url};
use canh::detect::region::DetectRegion;
use canh::listen::ListenOptions;
use canh::publish::MqttConfig;

/// What every command's help ends with.
const ENVIRONMENT_HELP: &str = "Environment:
  CANH_LOG         log levels on stderr, e.g. `debug` or `info,canh::track=trace` (default: info)
  CANH_LOG_FORMAT  `json` for JSON lines, `text` for text (default: JSON under systemd, else text)
  CANH_MODELS_DIR, CANH_PIPELINES_DIR
                   where models and pipeline templates are (default: share/canh beside the
                   installed program, else the source tree's models/ and pipelines/)
  NO_COLOR         no colours in text logs at a terminal
  STATE_DIRECTORY  the default state_dir (systemd's StateDirectory=)
  CREDENTIALS_DIRECTORY
                   what $CREDENTIALS_DIRECTORY in a site file stands for (systemd's LoadCredential=)";

const RUN_HELP: &str = "Without [mqtt] in the site file, every message is printed on stdout as a JSON line
(`{\"topic\": ..., \"payload\": ...}`) and a summary for a person goes to stderr at the end.

Signals: SIGHUP reloads the site file (a bad one is refused and the agent runs on as it was);
SIGINT or SIGTERM stop the agent within 10 s.

Exit codes: 0 stopped cleanly; 1 could not start (the error says why); 2 the site file has
errors (each listed with its key path); 3 stopped, but something stuck had to be left behind.";

const CHECK_HELP: &str = "Exit codes: 0 the file is good (warnings, if any, are printed); 2 it has errors, all of
them listed on stderr with their key paths and lines.

A site file meant for the service may name `$CREDENTIALS_DIRECTORY/mqtt-password`, which systemd
sets from the unit's LoadCredential= line. Outside the service that is only a warning; to check
the credential too, give the folder holding it with --credentials: /etc/canh for canh.service,
/etc/canh/NAME for canh@NAME.";

#[derive(Parser)]
#[command(name = "canh", version, about = "Edge video analytics: camera streams in, counts and alerts out over MQTT", after_help = ENVIRONMENT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent for a site: its cameras in, counts and alerts out over MQTT (or stdout).
    #[command(after_help = format!("{RUN_HELP}\n\n{ENVIRONMENT_HELP}"))]
    Run {
        /// The site file (TOML; every key is in configs/README.md).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a site config and print every error with its key path.
    #[command(after_help = format!("{CHECK_HELP}\n\n{ENVIRONMENT_HELP}"))]
    Check {
        /// The site file to check.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The folder `$CREDENTIALS_DIRECTORY` stands for in the site file [default: the
        /// CREDENTIALS_DIRECTORY variable, which systemd sets for the service].
        #[arg(long, value_name = "DIR")]
        credentials: Option<PathBuf>,
    },
    /// Process a clip as fast as possible; the last stdout line is a JSON summary of the counts,
    /// alerts and fire events.
    #[command(after_help = ENVIRONMENT_HELP)]
    Replay {
        /// Video file to process.
        #[arg(long)]
        input: PathBuf,
        /// Take the camera's model, lines and rate from this site config.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Which camera of --config (default: its only camera).
        #[arg(long, requires = "config")]
        camera: Option<String>,
        /// Extra counting lines `X1,Y1,X2,Y2` in normalized coordinates (ids line0, line1, …),
        /// `in` crossing from the left of P1→P2 to its right; several after one flag, or the flag
        /// repeated.
        #[arg(long = "line", value_name = "X1,Y1,X2,Y2", num_args = 1..)]
        lines: Vec<String>,
        /// Frames analysed per second of video; 0 analyses every frame [default: the camera's
        /// analytics_fps, else 5; 2 with --fire and no --config].
        #[arg(long)]
        fps: Option<u32>,
        /// Write every analysed frame as a PNG into this folder, with the rules' zones and lines
        /// (stop lines in the signal's colour), tracks with ids and speeds, violators in red.
        #[arg(long, value_name = "DIR")]
        render: Option<PathBuf>,
        /// Watch the whole frame for fire and smoke at default settings (and at 2 analysed fps
        /// unless --fps or the config says otherwise).
        #[arg(long)]
        fire: bool,
        /// Signal-controller messages recorded with the clip, played at their stream times:
        /// JSON lines `{"t_s": 5.0, "topic": "junction/phase", "state": "red"}`.
        #[arg(long, value_name = "FILE")]
        signal_log: Option<PathBuf>,
        /// Run the detector on every analysed frame, moving or still (no motion gating).
        #[arg(long)]
        no_motion_gate: bool,
        /// Read the licence plate of every vehicle track (no config needed); the
        /// summary lists them under "plates" (text null when unread, with why), and --render
        /// writes each read plate beside its vehicle.
        #[arg(long)]
        plates: bool,
        /// Scale frames to this width for the detector [default: the camera's `detect_width_px`,
        /// else the model's input width, 416 for yolox_nano]; given, it turns `detect_zoom` off.
        #[arg(long, value_name = "PX")]
        detect_width: Option<u32>,
        /// Where the detector looks: `auto` (the lines and rules with a quarter of the frame
        /// around them), `frame`, or `x1,y1,x2,y2` (normalized) [default: the camera's
        /// `detect_region`, else the whole frame]; given, it turns `detect_zoom` off.
        #[arg(long, value_name = "REGION")]
        detect_region: Option<DetectRegion>,
        /// Never look closer than the camera's own look (`detect_zoom = false`).
        #[arg(long)]
        no_detect_zoom: bool,
        /// Detect with this model of models/, e.g. `yolox_nano_int8` [default: the camera's
        /// `model`, else yolox_nano].
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
    },
    /// The reference IOC consumer: subscribe to a site's topics, validate every message against
    /// the documented schema, drop duplicates by id, store events in SQLite and images beside it,
    /// print one line per message. Stops on SIGINT/SIGTERM.
    #[command(after_help = ENVIRONMENT_HELP)]
    Listen {
        /// `mqtt://host[:port]` or `mqtts://host[:port]`.
        #[arg(long, value_name = "URL")]
        broker: String,
        /// The site's topic prefix, e.g. `canh/v1/hue-gate-2`.
        #[arg(long, value_name = "P")]
        prefix: String,
        /// The SQLite database; images go into `evidence/` and `snapshots/` beside it.
        #[arg(long, value_name = "FILE", default_value = "canh-listen.sqlite")]
        db: PathBuf,
        /// (TLS) CA certificates the broker's certificate must be signed by (PEM) [default: the
        /// system's, /etc/ssl/certs/ca-certificates.crt].
        #[arg(long, value_name = "FILE")]
        ca_file: Option<String>,
        /// (Mutual TLS) the consumer's client certificate (PEM), with --key-file.
        #[arg(long, value_name = "FILE", requires = "key_file")]
        cert_file: Option<String>,
        /// (Mutual TLS) the private key of --cert-file (PEM).
        #[arg(long, value_name = "FILE", requires = "cert_file")]
        key_file: Option<String>,
        /// The broker user to log in as [default: none, an anonymous connection].
        #[arg(long)]
        username: Option<String>,
        /// A file holding the password of --username (a trailing newline is ignored).
        #[arg(long, value_name = "FILE", requires = "username")]
        password_file: Option<String>,
        /// Forget events, images and invalid messages received more than this many days ago
        /// (checked at start and every hour; each topic's latest status stays) [default: keep
        /// everything].
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
        keep_days: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config, credentials } => return check(&config, credentials),
        Command::Replay { input, config, camera, lines, fps, render, fire, signal_log, no_motion_gate, plates, detect_width, detect_region, no_detect_zoom, model } => {
            let tools = ReplayTools { render_dir: render, fire, signal_log, motion_gate: !no_motion_gate, plates, detect_width, detect_region, detect_zoom: !no_detect_zoom, model };
            replay(&input, config.as_deref(), camera.as_deref(), &lines, fps, tools)
        }
        Command::Listen { broker, prefix, db, ca_file, cert_file, key_file, username, password_file, keep_days } => {
            let mqtt = MqttConfig { ca_file, client_cert_file: cert_file, client_key_file: key_file, username, password_file, ..MqttConfig::new(&broker) };
            let keep = keep_days.map(|days| std::time::Duration::from_secs(u64::from(days) * 86_400));
            listen(ListenOptions { mqtt, prefix, db, keep })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(left) = e.downcast_ref::<LeftBehind>() {
                tracing::error!("{left}");
                return ExitCode::from(EXIT_LEFT_BEHIND);
            }
            match e.downcast_ref::<ConfigErrors>() {
                Some(errors) => {
                    eprint!("{errors}");
                    ExitCode::from(2)
                }
                None => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// After SIGTERM or SIGINT the daemon ends within this long, whatever is stuck: every message is
/// in the disk outbox by then (it is written before it is published), so nothing is lost.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(10);
/// The exit code of a daemon that stopped but left something stuck behind.
const EXIT_LEFT_BEHIND: u8 = 3;

/// The daemon stopped, but not everything did.
#[derive(Debug, thiserror::Error)]
#[error("stopped, leaving {0} stuck behind")]
struct LeftBehind(String);

/// Ends the process [`SHUTDOWN_LIMIT`] after `stop` is set, if it has not ended by then.
fn bound_shutdown(stop: Arc<AtomicBool>) {
    let guard = std::thread::Builder::new().name("shutdown-guard".into()).spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(SHUTDOWN_LIMIT);
        tracing::error!("not stopped within {} s of the signal: leaving what is stuck behind", SHUTDOWN_LIMIT.as_secs());
        std::process::exit(EXIT_LEFT_BEHIND.into());
    });
    if let Err(e) = guard {
        tracing::warn!("cannot start the shutdown guard; a stuck source could delay the stop: {e}");
    }
}

/// Logs on stderr: levels from `CANH_LOG` (default `info`); JSON lines when `CANH_LOG_FORMAT` is
/// `json`, or under systemd (`JOURNAL_STREAM` set and stderr not a terminal), else human text.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANH_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match std::env::var("CANH_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => std::env::var_os("JOURNAL_STREAM").is_some() && !std::io::stderr().is_terminal(),
    };
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        logs.json().flatten_event(true).init();
    } else {
        // Colours only for a person at a terminal, not in log files.
        logs.with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()).init();
    }
}

/// SIGINT and SIGTERM set the returned flag; the agent then stops cleanly.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("cannot install a signal handler")?;
    }
    Ok(stop)
}

/// The daemon: runs the site until stopped; a reload (SIGHUP or the IOC's command) with a valid
/// new config runs the site again with it.
fn run(config_path: &std::path::Path) -> Result<()> {
    let resources = Resources::locate();
    let mut config = SiteConfig::load(config_path, &resources)?;
    let stop = stop_on_signals()?;
    bound_shutdown(stop.clone());
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone()).context("cannot install a signal handler")?;
    let options = DaemonOptions { config_path: config_path.to_path_buf(), reload };
    loop {
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        for camera in &config.cameras {
            tracing::info!(camera = %camera.id, source = %redact_url(&camera.source), fps = camera.analytics_fps, lines = camera.lines.len(), "camera");
        }
        let summary = run_site(&config, &resources, Mode::Daemon(options.clone()), stop.clone())?;
        for camera in &summary.cameras {
            let totals = serde_json::to_string(&camera.lines)?;
            tracing::info!(camera = %camera.id, frames = camera.frames_analysed, dropped = camera.frames_dropped, reconnects = camera.reconnects, %totals, "stopped");
        }
        // Without a broker someone is reading stdout at a terminal (the demo, a first try): the
        // JSON lines stay machine-readable there, the summary for the person goes to stderr.
        if config.mqtt.is_none() && summary.reload.is_none() {
            eprint!("{}", human_summary(&config.site, &summary));
        }
        match summary.reload {
            Some(new) => config = new,
            None if summary.left_behind > 0 => return Err(LeftBehind(format!("{} camera sources", summary.left_behind)).into()),
            None => return Ok(()),
        }
    }
}

/// What a run found, for a person: counts per camera, line, direction and class, alerts by
/// rule, fire messages by kind and level, and how long it took.
fn human_summary(site: &str, summary: &RunSummary) -> String {
    use std::fmt::Write;
    let classes = |counts: &BTreeMap<String, u64>| match counts.values().sum::<u64>() {
        0 => "0".to_string(),
        total => format!("{total} ({})", counts.iter().map(|(class, n)| format!("{n} {class}")).collect::<Vec<_>>().join(", ")),
    };
    let mut out = String::new();
    let cameras = summary.cameras.len();
    let _ = writeln!(out, "\nsite {site}: {cameras} camera{}, {} frames analysed in {:.1} s", plural(cameras), summary.frames, summary.seconds);
    for camera in &summary.cameras {
        let _ = writeln!(out, "camera {}:", camera.id);
        for line in &camera.lines {
            let _ = writeln!(out, "  line {}: in {}; out {}", line.id, classes(&line.into), classes(&line.out));
        }
        let alerts: Vec<String> = camera.violations.iter().filter(|(_, n)| **n > 0).map(|(rule, n)| format!("{n} {rule}")).collect();
        if !camera.violations.is_empty() {
            let _ = writeln!(out, "  violations: {}", if alerts.is_empty() { "none".to_string() } else { alerts.join(", ") });
        }
        if !camera.fire_counts.is_empty() {
            let _ = writeln!(out, "  fire: {}", camera.fire_counts.iter().map(|(what, n)| format!("{n} {what}")).collect::<Vec<_>>().join(", "));
        }
        if let Some(error) = &camera.error {
            let _ = writeln!(out, "  error: {error}");
        }
    }
    out
}

/// "s" after a count other than one.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn listen(options: ListenOptions) -> Result<()> {
    let summary = canh::listen::listen(&options, stop_on_signals()?)?;
    tracing::info!(events = summary.events, duplicates = summary.duplicates, images = summary.images, invalid = summary.invalid, "stopped listening");
    Ok(())
}

fn check(config_path: &std::path::Path, credentials: Option<PathBuf>) -> ExitCode {
    let mut resources = Resources::locate();
    if credentials.is_some() {
        resources.credentials_dir = credentials;
    }
    match SiteConfig::load(config_path, &resources) {
        Ok(config) => {
            let lines: usize = config.cameras.iter().map(|c| c.lines.len()).sum();
            let rules: usize = config.cameras.iter().map(|c| c.rules.len()).sum();
            let fire = config.cameras.iter().filter(|c| c.fire.is_some()).count();
            let cameras = config.cameras.len();
            println!(
                "{}: ok (site {}, {cameras} camera{}, {lines} line{}, {rules} rule{}, {fire} fire watch{})",
                config_path.display(),
                config.site,
                plural(cameras),
                plural(lines),
                plural(rules),
                if fire == 1 { "" } else { "es" }
            );
            for warning in config.warnings() {
                println!("warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::from(2)
        }
    }
}

#[derive(Serialize)]
struct ReplaySummary {
    /// Frames the detector ran on.
    frames: u64,
    /// Frames the motion gate found still.
    frames_skipped: u64,
    /// Wall time of the whole replay, start-up included.
    seconds: f64,
    /// Frames analysed per second of `seconds`.
    fps: f64,
    /// Frames looked at (analysed or skipped) per second from the first frame to the end.
    analysis_fps: f64,
    lines: Vec<LineCounts>,
    /// Alerts by rule id.
    violations: BTreeMap<String, u64>,
    /// Every fire message: kind, level, zone, position in the clip (`t_s`) and region.
    fire_events: Vec<FireSummary>,
    /// With --plates: every vehicle track's plate.
    #[serde(skip_serializing_if = "Option::is_none")]
    plates: Option<Vec<PlateSummary>>,
    /// How the detector looks at the end (`detect_zoom`): "as set", "finding out" or "closer".
    detect_look: &'static str,
}

/// What replay adds to a plain run.
struct ReplayTools {
    render_dir: Option<PathBuf>,
    fire: bool,
    signal_log: Option<PathBuf>,
    motion_gate: bool,
    plates: bool,
    detect_width: Option<u32>,
    detect_region: Option<DetectRegion>,
    detect_zoom: bool,
    model: Option<String>,
}

/// Fire cameras are mostly static: two analysed frames a second see a fire grow.
const FIRE_REPLAY_FPS: u32 = 2;

fn replay(input: &std::path::Path, config_path: Option<&std::path::Path>, camera_id: Option<&str>, lines: &[String], fps: Option<u32>, tools: ReplayTools) -> Result<()> {
    let ReplayTools { render_dir, fire, signal_log, motion_gate, plates, detect_width, detect_region, detect_zoom, model } = tools;
    let resources = Resources::locate();
    let input = std::path::absolute(input).with_context(|| format!("{}", input.display()))?;
    let mut config = match config_path {
        Some(path) => SiteConfig::load(path, &resources)?,
        None => SiteConfig::parse("site = \"replay\"\ncameras = []").map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let mut camera = match (config_path, camera_id) {
        (None, _) => CameraConfig::with_defaults("replay", ""),
        (Some(_), Some(id)) => config.cameras.iter().find(|c| c.id == id).cloned().with_context(|| format!("no camera '{id}' in the config"))?,
        (Some(_), None) if config.cameras.len() == 1 => config.cameras[0].clone(),
        (Some(_), None) => bail!("the config has {} cameras: choose one with --camera", config.cameras.len()),
    };
    camera.source = input.to_string_lossy().into_owned();
    if fire && camera.fire.is_none() {
        camera.fire = Some(FireConfig::default());
        if config_path.is_none() {
            camera.analytics_fps = FIRE_REPLAY_FPS;
        }
    }
    if let Some(fps) = fps {
        camera.analytics_fps = fps;
    }
    if !motion_gate {
        camera.motion.enabled = false;
    }
    if detect_width.is_some() {
        camera.detect_width_px = detect_width;
    }
    if let Some(region) = detect_region {
        camera.detect_region = Some(region);
    }
    if !detect_zoom {
        camera.detect_zoom = false;
    }
    if let Some(model) = model {
        camera.model = model;
    }
    for (i, spec) in lines.iter().enumerate() {
        camera.lines.push(parse_line(i, spec)?);
    }
    config.cameras = vec![camera];
    let errors = config.validate(&resources);
    if !errors.is_empty() {
        return Err(ConfigErrors { file: PathBuf::from("(replay)"), errors }.into());
    }
    if let Some(dir) = &render_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("--render {}", dir.display()))?;
    }
    let signal_log = match &signal_log {
        Some(path) => SignalLogEntry::read_log(path).map_err(|e| anyhow::anyhow!("--signal-log {e}"))?,
        None => Vec::new(),
    };
    // Replay prints; it never publishes to the site's broker.
    let summary = run_site(&config, &resources, Mode::Replay(ReplayOptions { render_dir, signal_log, plates }), stop_on_signals()?)?;
    let camera = summary.cameras.into_iter().next().context("the replay produced no result")?;
    if let Some(reason) = camera.error {
        bail!("{}: {reason}", input.display());
    }
    let out = ReplaySummary {
        frames: summary.frames,
        frames_skipped: camera.frames_skipped,
        analysis_fps: if camera.analysing_s > 0.0 { (camera.frames_analysed + camera.frames_skipped) as f64 / camera.analysing_s } else { 0.0 },
        seconds: summary.seconds,
        fps: if summary.seconds > 0.0 { summary.frames as f64 / summary.seconds } else { 0.0 },
        lines: camera.lines,
        violations: camera.violations,
        fire_events: camera.fire_events,
        plates: plates.then_some(camera.plates),
        detect_look: camera.detect_look,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

fn parse_line(index: usize, spec: &str) -> Result<LineConfig> {
    let values: Vec<f32> = spec
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--line '{spec}': expected four numbers X1,Y1,X2,Y2"))?;
    let [x1, y1, x2, y2] = values[..] else {
        bail!("--line '{spec}': expected four numbers X1,Y1,X2,Y2, got {}", values.len());
    };
    Ok(LineConfig { id: format!("line{index}"), p1: [x1, y1], p2: [x2, y2], classes: None, confirm_frames: CONFIRM_FRAMES, publish_crossings: true, plates: false })
}
