//! The real YOLOX-nano on a real frame of a bundled clip finds the cars where they are.

mod common;

use gstreamer as gst;

use canh::config::Resources;
use canh::detect::{Detector, DetectorConfig, input_caps};
use canh::source::decode_frame;

#[test]
fn yolox_nano_finds_the_cars_on_a_real_frame() {
    gst::init().unwrap();
    let manifest = Resources::locate().model("yolox_nano").unwrap();
    let detector = Detector::load(manifest, &DetectorConfig::default()).unwrap();
    let caps = input_caps(&detector.manifest().input);
    // Frame 199 (8.3 s) of the arterial: seven cars in view, four of them clear enough for score 0.5.
    let frame = decode_frame(&common::sample("opencv4nodejs_traffic.mp4"), 199, &caps).unwrap();
    assert_eq!((frame.width, frame.height), (416, 234), "GStreamer keeps the 16:9 aspect ratio inside 416x416");
    let detections = detector.detect(&frame, 0.5).unwrap();
    let car = detector.manifest().class_id("car").unwrap();
    let cars: Vec<_> = detections.iter().filter(|d| d.class == car).collect();
    assert!(cars.len() >= 4, "{detections:#?}");
    // Centres checked by eye on the frame: the dark car top left, the SUV top right, the blue car
    // in the middle, the dark SUV bottom right.
    for (x, y) in [(0.19, 0.15), (0.81, 0.15), (0.75, 0.49), (0.82, 0.68)] {
        assert!(
            cars.iter().any(|d| (d.bbox.center().x - x).abs() < 0.05 && (d.bbox.center().y - y).abs() < 0.05),
            "no car near ({x}, {y}): {cars:#?}"
        );
    }
    // Nothing is reported in the empty median strip.
    assert!(detections.iter().all(|d| !(d.bbox.center().y > 0.26 && d.bbox.center().y < 0.36 && d.bbox.area() < 0.01)));
}

#[test]
fn a_model_file_that_does_not_match_its_manifest_is_refused() {
    let mut manifest = Resources::locate().model("yolox_nano").unwrap();
    manifest.sha256 = Some("00".repeat(32));
    let err = Detector::load(manifest, &DetectorConfig::default()).err().expect("a wrong checksum is an error");
    assert!(err.to_string().contains("but its manifest says"), "{err}");
}
