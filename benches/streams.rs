//! How many cameras one box serves: K cameras of 720p H.264 at 25 fps from an RTSP server on
//! 127.0.0.1, each analysed at 5 fps by `canh run`, for T seconds per K, for each K of the list;
//! the largest K where no camera misses its rate or drops frames is the answer. Also, on the same
//! stream, the physical limits: decoding alone and inference alone, and the two sharing the cores.
//! Prints a table, writes `target/bench-streams-{clip}.json`.
//!
//!   cargo bench -p canh --bench streams [-- [SECONDS_PER_STEP] [--clip NAME] [--cameras K,K,…] [--plates] [--fire [--decode-all]]]
//!
//! `--plates` marks each camera's line `plates = true`: every vehicle crossing it has its licence
//! plate read (the output file gets `-plates` in its name).
//!
//! `--fire` makes each camera a fire watch (`[cameras.fire]` at its defaults, no lines) analysed
//! at 1 fps, on a stream with a key frame every second (25 frames), so that only key frames are
//! decoded (`decode = "auto"`); `--decode-all` decodes every frame (`decode = "all"`) to compare.
//!
//! The stream: a bundled H.264 MP4 clip (default `opencv4nodejs_traffic.mp4`, a multi-lane road seen from
//! above, busy all the time; `intel_car-detection.mp4` is a quieter road where single cars pass),
//! scaled to 1280x720 at 25 fps and repeated six times, encoded once with x264 (2 Mbit/s) into
//! `target/bench/{clip}-720p-key{N}.mp4` (a key frame every N frames: 50, or 25 with `--fire`). Needs `target/release/canh` and mosquitto.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

use canh::config::Resources;
use canh::detect::{Detector, DetectorConfig, input_caps};
use canh::source::decode_frame;

const TARGET_FPS: f64 = 5.0;
const FIRE_TARGET_FPS: f64 = 1.0;
const STREAM_FPS: f64 = 25.0;
const REPEATS: usize = 6;
const WARMUP: Duration = Duration::from_secs(8);

struct Options {
    seconds: u64,
    clip: String,
    cameras: Vec<usize>,
    plates: bool,
    fire: bool,
    decode_all: bool,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut options = Options { seconds: 30, clip: "opencv4nodejs_traffic.mp4".into(), cameras: vec![1, 2, 4, 6, 8, 10, 12, 16], plates: false, fire: false, decode_all: false };
        let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--plates" => options.plates = true,
                "--fire" => options.fire = true,
                "--decode-all" => options.decode_all = true,
                "--clip" => options.clip = args.next().ok_or_else(|| anyhow::anyhow!("--clip needs a file name from samples/clips"))?,
                "--cameras" => {
                    let list = args.next().unwrap_or_default();
                    options.cameras = list.split(',').map(|k| k.trim().parse()).collect::<Result<_, _>>().map_err(|_| anyhow::anyhow!("--cameras takes numbers like 6,8, not '{list}'"))?;
                }
                seconds => options.seconds = seconds.parse().map_err(|_| anyhow::anyhow!("unknown argument '{seconds}'"))?,
            }
        }
        Ok(options)
    }
}

fn main() -> anyhow::Result<()> {
    let Options { seconds, clip: clip_name, cameras, plates, fire, decode_all } = Options::parse()?;
    // A fire watch looks once a second, on a stream whose key frames come as often.
    let (target_fps, key_interval_frames) = if fire { (FIRE_TARGET_FPS, STREAM_FPS as u32) } else { (TARGET_FPS, 2 * STREAM_FPS as u32) };
    let camera_keys = if fire {
        "[cameras.fire]\n".to_string()
    } else {
        // The look the clip keeps (the whole frame), without the seconds spent finding it out.
        format!("detect_zoom = false\n[[cameras.lines]]\nid = \"middle\"\np1 = [0.5, 1.0]\np2 = [0.5, 0.0]\nplates = {plates}\n")
    };
    let decode = if decode_all { "all" } else { "auto" };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let canh = root.join("target/release/canh");
    anyhow::ensure!(canh.exists(), "build first: cargo build --release");
    gst::init()?;
    let clip = prepare_clip(&root, &clip_name, key_interval_frames)?;
    let (decode_fps, clip_frames) = decode_only(&clip)?;
    let clip_seconds = clip_frames as f64 / STREAM_FPS;
    let raw_bytes_per_hour = std::fs::metadata(&clip)?.len() as f64 / clip_seconds * 3600.0;

    let (inference_ms, inference_fps) = inference_only(&root)?;
    let decode_cameras = decode_fps / STREAM_FPS;
    let inference_cameras = inference_fps / target_fps;
    println!("stream: {clip_name} at 1280x720, 25 fps, {clip_seconds:.0} s\nlimits on this machine: decoding alone {decode_fps:.0} frames/s = {decode_cameras:.1} streams at 25 fps; inference alone {inference_fps:.1} frames/s ({inference_ms:.1} ms each, one per core side by side) = {inference_cameras:.1} cameras at {target_fps} fps");

    let mqtt_port = free_port();
    let _broker = Broker::start(mqtt_port, &root.join("target/bench"))?;
    println!("\n{:>3} {:>12} {:>10} {:>8} {:>12} {:>12} {:>7} {:>8} {:>14}", "K", "fps/camera", "min fps", "drops", "skipped", "latency p50", "p99", "CPU %", "peak RSS MB");
    let mut steps = Vec::new();
    let mut best = 0;
    for k in cameras {
        // A fresh server for each step: nothing left over from the previous agent's sessions.
        let rtsp_port = free_port();
        let server = serve(&clip, rtsp_port)?;
        let cameras = CameraKeys { fps: target_fps, decode, keys: &camera_keys };
        let step = run_step(&canh, &root, k, rtsp_port, mqtt_port, Duration::from_secs(seconds), &cameras)?;
        drop(server);
        let holds = step.min_fps >= target_fps * 0.95 && step.drop_share < 0.01;
        println!(
            "{k:>3} {:>12.2} {:>10.2} {:>7.2}% {:>11.0}% {:>9.0} ms {:>6.0} ms {:>7.0} {:>14.0}{}",
            step.mean_fps,
            step.min_fps,
            step.drop_share * 100.0,
            step.skipped_share * 100.0,
            step.latency_p50_ms,
            step.latency_p99_ms,
            step.cpu_percent,
            step.peak_rss_mb,
            if holds { "" } else { "  <- misses the target" }
        );
        let uplink_share = step.uplink_bytes_per_camera_hour / raw_bytes_per_hour;
        let counts_only_bytes = step.uplink_bytes_per_camera_hour - step.crossing_bytes_per_camera_hour;
        steps.push(serde_json::json!({
            "cameras": k, "holds_target": holds, "mean_fps": step.mean_fps, "min_fps": step.min_fps, "drop_share": step.drop_share,
            "skipped_share": step.skipped_share, "latency_p50_ms": step.latency_p50_ms, "latency_p99_ms": step.latency_p99_ms,
            "cpu_percent": step.cpu_percent, "peak_rss_mb": step.peak_rss_mb,
            "uplink_bytes_per_camera_hour": step.uplink_bytes_per_camera_hour, "uplink_share_of_raw": uplink_share,
            "counts_only_bytes_per_camera_hour": counts_only_bytes, "counts_only_share_of_raw": counts_only_bytes / raw_bytes_per_hour,
        }));
        if holds {
            best = k;
        }
    }
    // Decoding and inference share the same cores: each camera takes its share of both.
    let limit = 1.0 / (1.0 / decode_cameras + 1.0 / inference_cameras);
    let last = steps.iter().rev().find(|s| s["holds_target"] == true).or(steps.first()).cloned().unwrap_or_default();
    let value = |key: &str| last[key].as_f64().unwrap_or(0.0);
    println!(
        "\nlargest K holding {target_fps} fps with < 1% drops: {best}; {}\nuplink per camera-hour: {:.0} bytes = {:.4}% of the raw stream ({raw_bytes_per_hour:.0} bytes) with every crossing published; {:.0} bytes = {:.4}% with publish_crossings = false",
        if fire {
            // The limits above are the traffic model's at 5 fps; a fire watch runs the flame and smoke models too.
            "no physical limit for fire watches (the limits above are the traffic model's)".to_string()
        } else {
            format!("physical limit with decoding and inference sharing the cores, 1 / (1/decode + 1/inference) = {limit:.1} cameras")
        },
        value("uplink_bytes_per_camera_hour"),
        value("uplink_share_of_raw") * 100.0,
        value("counts_only_bytes_per_camera_hour"),
        value("counts_only_share_of_raw") * 100.0,
    );
    let stem = clip_name.split('.').next().unwrap_or("clip");
    let variant = [(plates, "-plates"), (fire, "-fire"), (decode_all, "-decode-all")].iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect::<String>();
    let out = root.join(format!("target/bench-streams-{stem}{variant}.json"));
    let report = serde_json::json!({
        "clip": format!("{clip_name} scaled to 1280x720, 25 fps, x264 2 Mbit/s, repeated {REPEATS} times"),
        "seconds_per_step": seconds, "target_fps": target_fps, "plates": plates, "fire": fire, "decode": decode, "key_interval_frames": key_interval_frames,
        "decode_only_fps": decode_fps, "inference_only_ms": inference_ms, "inference_only_fps": inference_fps,
        "limit_cameras": (!fire).then_some(limit), "largest_k": best, "raw_bytes_per_hour": raw_bytes_per_hour, "steps": steps,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", out.display());
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The 720p stream, made once.
fn prepare_clip(root: &Path, name: &str, key_interval_frames: u32) -> anyhow::Result<PathBuf> {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let source = root.join("samples/clips").join(name);
    anyhow::ensure!(source.is_file(), "no clip {}", source.display());
    let stem = source.file_stem().and_then(|s| s.to_str()).unwrap_or("clip");
    let out = dir.join(format!("{stem}-720p-key{key_interval_frames}.mp4"));
    if out.exists() {
        return Ok(out);
    }
    println!("encoding {} (once)…", out.display());
    // Fixed elements, not decodebin: its pads appear late, and concat fed from six of them failed
    // now and then with "Internal data stream error".
    let branches: String = (0..REPEATS).map(|_| format!(" filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! c.", source.display())).collect();
    let description = format!(
        "concat name=c ! videoconvert ! videoscale ! videorate ! video/x-raw,width=1280,height=720,framerate=25/1 ! x264enc speed-preset=veryfast tune=zerolatency bitrate=2000 key-int-max={key_interval_frames} ! h264parse ! mp4mux ! filesink location=\"{}.part\"{branches}",
        out.display(),
    );
    run_to_end(&launch(&description)?)?;
    std::fs::rename(format!("{}.part", out.display()), &out)?;
    Ok(out)
}

fn launch(description: &str) -> anyhow::Result<gst::Pipeline> {
    gst::parse::launch(description)?.downcast::<gst::Pipeline>().map_err(|_| anyhow::anyhow!("not a pipeline: {description}"))
}

/// Plays a pipeline as fast as it goes, to its end; returns the seconds it took.
fn run_to_end(pipeline: &gst::Pipeline) -> anyhow::Result<f64> {
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let outcome = bus.iter_timed(gst::ClockTime::NONE).find_map(|message| match message.view() {
        gst::MessageView::Eos(_) => Some(Ok(())),
        gst::MessageView::Error(e) => Some(Err(anyhow::anyhow!("{}", e.error()))),
        _ => None,
    });
    let _ = pipeline.set_state(gst::State::Null);
    outcome.unwrap_or(Ok(()))?;
    Ok(started.elapsed().as_secs_f64())
}

/// Frames per second the box decodes the stream at, to fakesinks, nothing else running: one
/// single-threaded decoder per core, as the agent decodes many cameras. Also the clip's frames.
fn decode_only(clip: &Path) -> anyhow::Result<(f64, u64)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let decoders: String = (0..cores)
        .map(|i| format!(" filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 max-threads=1 ! fakesink name=sink{i} sync=false signal-handoffs=true", clip.display()))
        .collect();
    let pipeline = launch(&decoders)?;
    let counted = Arc::new(AtomicU64::new(0));
    for i in 0..cores {
        let c = counted.clone();
        pipeline.by_name(&format!("sink{i}")).expect("named above").connect("handoff", false, move |_| {
            c.fetch_add(1, Ordering::Relaxed);
            None
        });
    }
    let seconds = run_to_end(&pipeline)?;
    let frames = counted.load(Ordering::Relaxed);
    Ok((frames as f64 / seconds, frames / cores as u64))
}

/// Inferences per second of the default model on a real frame with every core busy, as the
/// agent runs it for many cameras (one single-threaded session per core, side by side), and the
/// median milliseconds of one inference that way.
fn inference_only(root: &Path) -> anyhow::Result<(f64, f64)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let detector = Detector::load(Resources::locate().model("yolox_nano")?, &DetectorConfig::default(), cores)?;
    let clip = root.join("samples/clips/opencv4nodejs_traffic.mp4");
    let frame = decode_frame(&clip, 0, &input_caps(&detector.manifest().input, None)).map_err(anyhow::Error::msg)?;
    const WARMUP: usize = 10;
    const RUNS: usize = 60;
    let timed = |detector: &Detector| -> anyhow::Result<Vec<f64>> {
        let mut ms = Vec::new();
        for i in 0..WARMUP + RUNS {
            let start = Instant::now();
            detector.detect(&frame, 0.1)?;
            if i >= WARMUP {
                ms.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        Ok(ms)
    };
    let started = Instant::now();
    let per_lane: Vec<anyhow::Result<Vec<f64>>> = std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..cores).map(|_| scope.spawn(|| timed(&detector))).collect();
        lanes.into_iter().map(|lane| lane.join().unwrap_or_else(|_| Err(anyhow::anyhow!("an inference thread panicked")))).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut ms = per_lane.into_iter().collect::<anyhow::Result<Vec<_>>>()?.concat();
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], (cores * (WARMUP + RUNS)) as f64 / elapsed))
}

/// The stream at `rtsp://127.0.0.1:{port}/clip`, from its start for each client, as a camera
/// serves each viewer.
struct Server {
    main_loop: gstreamer::glib::MainLoop,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.main_loop.quit();
    }
}

fn serve(clip: &Path, port: u16) -> anyhow::Result<Server> {
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&port.to_string());
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&format!("( filesrc location=\"{}\" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )", clip.display()));
    server.mount_points().expect("a server has mount points").add_factory("/clip", factory);
    let context = gstreamer::glib::MainContext::new();
    let main_loop = gstreamer::glib::MainLoop::new(Some(&context), false);
    server.attach(Some(&context))?;
    let running = main_loop.clone();
    std::thread::spawn(move || {
        let _guard = context.acquire().expect("a fresh context");
        running.run();
        drop(server);
    });
    Ok(Server { main_loop })
}

/// mosquitto on loopback, stopped when dropped.
struct Broker(Child);

impl Broker {
    fn start(port: u16, dir: &Path) -> anyhow::Result<Broker> {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"))?;
        let child = Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Broker(child))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Step {
    mean_fps: f64,
    min_fps: f64,
    drop_share: f64,
    skipped_share: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    cpu_percent: f64,
    peak_rss_mb: f64,
    uplink_bytes_per_camera_hour: f64,
    /// The crossing messages among them, which `publish_crossings = false` leaves out.
    crossing_bytes_per_camera_hour: f64,
}

/// What each camera of a step is: its rate, how it decodes, and its analyzers' keys.
struct CameraKeys<'a> {
    fps: f64,
    decode: &'a str,
    keys: &'a str,
}

fn run_step(canh: &Path, root: &Path, k: usize, rtsp_port: u16, mqtt_port: u16, length: Duration, cameras: &CameraKeys) -> anyhow::Result<Step> {
    let dir = root.join(format!("target/bench/streams-{k}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let metrics_port = free_port();
    let mut site = format!(
        "site = \"bench\"\ncounts_interval_s = 60\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\nclient_id = \"canh-bench-{k}\"\n"
    );
    for i in 0..k {
        let CameraKeys { fps, decode, keys } = cameras;
        site += &format!("\n[[cameras]]\nid = \"cam{i}\"\nsource = \"rtsp://127.0.0.1:{rtsp_port}/clip\"\nanalytics_fps = {fps}\ndecode = \"{decode}\"\n{keys}");
    }
    let config = dir.join("site.toml");
    std::fs::write(&config, site)?;
    let uplink = Arc::new(Uplink::default());
    let _subscriber = subscribe(mqtt_port, uplink.clone(), k);
    let mut agent = Command::new(canh)
        .args(["run", "--config", config.to_str().expect("a UTF-8 path")])
        .env("CANH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("canh.log"))?)
        .spawn()?;
    std::thread::sleep(WARMUP);
    let (before, cpu_before, uplink_before) = (scrape(metrics_port)?, cpu_seconds(agent.id())?, uplink.read());
    let started = Instant::now();
    std::thread::sleep(length);
    let (after, cpu_after, uplink_after) = (scrape(metrics_port)?, cpu_seconds(agent.id())?, uplink.read());
    let elapsed = started.elapsed().as_secs_f64();
    let peak_rss_mb = peak_rss_kb(agent.id())? / 1024.0;
    let threads = cpu_by_thread(agent.id())?;
    Command::new("kill").arg("-TERM").arg(agent.id().to_string()).status()?;
    let _ = agent.wait();

    let delta = |name: &str, camera: &str| after.get(&(name.to_string(), camera.to_string())).copied().unwrap_or(0.0) - before.get(&(name.to_string(), camera.to_string())).copied().unwrap_or(0.0);
    let mut fps = Vec::new();
    let (mut frames_in, mut dropped, mut skipped, mut looked) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..k {
        let camera = format!("cam{i}");
        let analysed = delta("canh_camera_frames_analysed_total", &camera);
        let gated = delta("canh_camera_frames_skipped_total", &camera);
        fps.push((analysed + gated) / elapsed);
        frames_in += delta("canh_camera_frames_in_total", &camera);
        dropped += delta("canh_camera_frames_dropped_total", &camera);
        skipped += gated;
        looked += analysed + gated;
    }
    let latency = |q: f64| quantile(&before, &after, "canh_event_latency_ms", q);
    let total: f64 = threads.values().sum();
    let mut by_share: Vec<(&String, &f64)> = threads.iter().collect();
    by_share.sort_by(|a, b| b.1.total_cmp(a.1));
    let breakdown: Vec<String> = by_share.iter().take(6).map(|(name, s)| format!("{name} {:.0}%", *s / total * 100.0)).collect();
    println!("    where the CPU went (whole run, by thread): {}", breakdown.join(", "));
    Ok(Step {
        mean_fps: fps.iter().sum::<f64>() / k as f64,
        min_fps: fps.iter().copied().fold(f64::INFINITY, f64::min),
        drop_share: if frames_in > 0.0 { dropped / frames_in } else { 1.0 },
        skipped_share: if looked > 0.0 { skipped / looked } else { 0.0 },
        latency_p50_ms: latency(0.5),
        latency_p99_ms: latency(0.99),
        cpu_percent: (cpu_after - cpu_before) / elapsed * 100.0,
        peak_rss_mb,
        uplink_bytes_per_camera_hour: (uplink_after.0 - uplink_before.0) as f64 / k as f64 / elapsed * 3600.0,
        crossing_bytes_per_camera_hour: (uplink_after.1 - uplink_before.1) as f64 / k as f64 / elapsed * 3600.0,
    })
}

/// Bytes (topic and payload) the site publishes: everything, and the crossing messages among them.
#[derive(Default)]
struct Uplink {
    all: AtomicU64,
    crossings: AtomicU64,
}

impl Uplink {
    fn read(&self) -> (u64, u64) {
        (self.all.load(Ordering::Relaxed), self.crossings.load(Ordering::Relaxed))
    }
}

fn subscribe(port: u16, bytes: Arc<Uplink>, k: usize) -> std::thread::JoinHandle<()> {
    let mut options = rumqttc::MqttOptions::new(format!("bench-uplink-{k}"), "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = rumqttc::Client::new(options, 100);
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(_))) => {
                    let _ = client.try_subscribe("canh/v1/bench/#", rumqttc::QoS::AtMostOnce);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                    let size = (p.topic.len() + p.payload.len()) as u64;
                    bytes.all.fetch_add(size, Ordering::Relaxed);
                    if p.topic.ends_with("/crossing") {
                        bytes.crossings.fetch_add(size, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    })
}

/// Every sample of a scrape: (metric with suffix, camera or the `le` label) → value.
fn scrape(port: u16) -> anyhow::Result<BTreeMap<(String, String), f64>> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("canh_")) {
        let Some((key, value)) = line.rsplit_once(' ') else { continue };
        let (name, labels) = key.split_once('{').unwrap_or((key, ""));
        let label = |which: &str| labels.split(',').find_map(|l| l.strip_prefix(&format!("{which}=\""))).map(|v| v.trim_end_matches(['"', '}']).to_string());
        let key = label("camera").or_else(|| label("le")).unwrap_or_default();
        samples.insert((name.to_string(), key), value.parse().unwrap_or(0.0));
    }
    Ok(samples)
}

/// The upper bound of the bucket holding quantile `q` of a histogram's observations between two
/// scrapes (the resolution the buckets allow).
fn quantile(before: &BTreeMap<(String, String), f64>, after: &BTreeMap<(String, String), f64>, name: &str, q: f64) -> f64 {
    let bucket = format!("{name}_bucket");
    let mut buckets: Vec<(f64, f64)> = after
        .iter()
        .filter(|((n, _), _)| *n == bucket)
        .map(|((n, le), count)| (le.parse::<f64>().unwrap_or(f64::INFINITY), count - before.get(&(n.clone(), le.clone())).copied().unwrap_or(0.0)))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    if total == 0.0 {
        return f64::NAN;
    }
    buckets.iter().find(|(_, count)| *count >= q * total).map_or(f64::INFINITY, |b| b.0)
}

/// User and system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0) + fields.get(12).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ticks / 100.0)
}

/// CPU seconds of a process so far, by thread name (GStreamer and ONNX Runtime name theirs).
fn cpu_by_thread(pid: u32) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut by_name = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(')')).map(|(name, rest)| (name.to_string(), rest.to_string())) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0) + fields.get(12).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        // Numbered threads of one kind (a pool, one queue per camera) count together. Threads
        // nobody named (ONNX Runtime's pool, libav's decoders) carry the process's name.
        let kind: String = head.chars().filter(|c| !c.is_ascii_digit()).collect();
        *by_name.entry(kind).or_insert(0.0) += ticks / 100.0;
    }
    Ok(by_name)
}

/// The peak resident set of a process, KiB.
fn peak_rss_kb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0.0))
}
