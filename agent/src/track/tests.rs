use super::*;
use crate::types::BBox;

const CAR: ClassId = 2;
const TRUCK: ClassId = 7;
const PERSON: ClassId = 0;

fn det(cx: f32, cy: f32, class: ClassId, score: f32) -> Detection {
    Detection { bbox: BBox::from_center(cx, cy, 0.1, 0.06), class, score }
}

fn tracker() -> Tracker {
    Tracker::new(TrackerConfig::default(), 0.3, 80, &[CAR, TRUCK])
}

fn at(frame: u32, fps: f32) -> Duration {
    Duration::from_secs_f32(frame as f32 / fps)
}

#[test]
fn a_track_is_born_tentative_and_confirmed_after_min_hits() {
    let mut t = tracker();
    assert!(t.update(&[det(0.2, 0.5, CAR, 0.9)], at(0, 5.0)).is_empty());
    let out = t.update(&[det(0.22, 0.5, CAR, 0.9)], at(1, 5.0));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id, 1);
}

#[test]
fn keeps_the_id_of_a_car_moving_most_of_its_length_per_frame_at_5_fps() {
    let mut t = tracker();
    // Box 0.1 wide moving 0.08 per frame, beside a parked car.
    let mut ids = Vec::new();
    for f in 0..10 {
        let dets = [det(0.05 + 0.08 * f as f32, 0.5, CAR, 0.8), det(0.5, 0.8, CAR, 0.8)];
        let out = t.update(&dets, at(f, 5.0));
        ids.extend(out.iter().filter(|o| (o.bbox.center().y - 0.5).abs() < 0.01).map(|o| o.id));
    }
    assert_eq!(ids.len(), 9);
    assert!(ids.iter().all(|&id| id == ids[0]), "{ids:?}");
}

#[test]
fn coasts_through_missed_detections_then_drops_and_never_reuses_ids() {
    let mut t = tracker();
    let mut x = 0.1;
    let mut frame = 0;
    let mut step = |t: &mut Tracker, dets: &[Detection]| {
        frame += 1;
        t.update(dets, at(frame, 5.0))
    };
    for _ in 0..3 {
        x += 0.03;
        step(&mut t, &[det(x, 0.5, CAR, 0.9)]);
    }
    // Two frames (0.4 s) unseen: within lost_timeout_s, the same id comes back where predicted.
    step(&mut t, &[]);
    step(&mut t, &[]);
    x += 0.09;
    let out = step(&mut t, &[det(x, 0.5, CAR, 0.9)]);
    assert_eq!(out.iter().map(|o| o.id).collect::<Vec<_>>(), vec![1]);
    // Unseen for longer than lost_timeout_s: dropped; a new object gets a fresh id.
    for _ in 0..8 {
        step(&mut t, &[]);
    }
    step(&mut t, &[det(0.1, 0.5, CAR, 0.9)]);
    let out = step(&mut t, &[det(0.11, 0.5, CAR, 0.9)]);
    assert_eq!(out.iter().map(|o| o.id).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn class_is_a_majority_vote_and_vehicles_never_become_people() {
    let mut t = tracker();
    let mut last = Vec::new();
    for (f, class) in [CAR, TRUCK, CAR, CAR].into_iter().enumerate() {
        last = t.update(&[det(0.3, 0.5, class, 0.8)], at(f as u32, 5.0));
    }
    assert_eq!(last[0].class, CAR);
    // A person detection in the same place does not take over the car's track.
    let out = t.update(&[det(0.3, 0.5, PERSON, 0.9)], at(4, 5.0));
    assert!(out.is_empty());
}

#[test]
fn low_score_detections_keep_a_track_but_do_not_start_one() {
    let mut t = tracker();
    t.update(&[det(0.3, 0.5, CAR, 0.9)], at(0, 5.0));
    t.update(&[det(0.31, 0.5, CAR, 0.9)], at(1, 5.0));
    let out = t.update(&[det(0.32, 0.5, CAR, 0.2), det(0.8, 0.2, CAR, 0.2)], at(2, 5.0));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id, 1);
    assert_eq!(t.tracks.len(), 1);
}
