//! Riders are part of what they ride. The detector sees a motorbike with its rider as two
//! objects, a `person` and a `motorcycle`; counted apart, the rider is a pedestrian crossing the
//! road beside every motorbike (or, where the small motorbike is missed, the only thing seen).
//! In Vietnamese traffic, where most vehicles are motorbikes, that doubles or halves every count.
//! So each person who sits on a ridden vehicle is folded into it: one detection of the ridden
//! class, boxed round rider and vehicle, whose bottom is still the wheels.

use crate::types::{BBox, Detection};

/// A rider's box must overlap the vehicle's horizontally by at least this share of the narrower
/// of the two: riders sit over their wheels.
pub(crate) const MIN_SHARED_WIDTH: f32 = 0.5;
/// A rider's feet may hang below the vehicle's bottom by at most this share of its height; a
/// pedestrian standing behind a parked motorbike reaches lower.
const MAX_FEET_BELOW: f32 = 0.15;
/// A rider or motorbike box lying this much (share of its area) inside a motorbike's box is a
/// part of it, as in NMS.
const CONTAINED: f32 = super::nms::CONTAINED;
/// Two motorbike boxes whose bottoms differ by at most this share of the larger one's height
/// stand on the same wheels; a motorbike further up the road, half hidden behind a rider, does not.
const SAME_WHEELS: f32 = 0.15;

/// Whether `person` sits on `vehicle`: their widths overlap, the person is above the vehicle's
/// middle and reaches down into it, and does not stand below it.
fn rides(person: &BBox, vehicle: &BBox) -> bool {
    person.shared_width(vehicle) >= MIN_SHARED_WIDTH * person.width().min(vehicle.width())
        && person.center().y < vehicle.center().y
        && person.y2 > vehicle.y1
        && person.y2 <= vehicle.y2 + MAX_FEET_BELOW * vehicle.height()
}

/// The detections with each rider folded into the ridden vehicle it sits on (the best-placed
/// one: the largest horizontal overlap). A ridden vehicle may carry several riders.
pub fn merge(detections: Vec<Detection>, rider_classes: &[usize], ridden_classes: &[usize]) -> Vec<Detection> {
    if rider_classes.is_empty() || ridden_classes.is_empty() {
        return detections;
    }
    let (riders, mut others): (Vec<Detection>, Vec<Detection>) = detections.into_iter().partition(|d| rider_classes.contains(&d.class));
    let mut merged = vec![false; riders.len()];
    let vehicles = others.iter().enumerate().filter(|(_, d)| ridden_classes.contains(&d.class)).map(|(i, d)| (i, d.bbox)).collect::<Vec<_>>();
    for (r, rider) in riders.iter().enumerate() {
        let shared = |v: &BBox| rider.bbox.shared_width(v);
        let seat = vehicles.iter().filter(|(_, v)| rides(&rider.bbox, v)).max_by(|a, b| shared(&a.1).total_cmp(&shared(&b.1)));
        if let Some(&(i, _)) = seat {
            let vehicle = &mut others[i];
            vehicle.bbox = vehicle.bbox.union(&rider.bbox);
            vehicle.score = vehicle.score.max(rider.score);
            merged[r] = true;
        }
    }
    others.extend(riders.into_iter().zip(merged).filter(|(_, m)| !m).map(|(d, _)| d));
    fold_parts(others, rider_classes, ridden_classes)
}

/// The detector often boxes one rider twice (the whole rider and the upper body alone) and one
/// motorbike twice (the bike alone and the bike under its rider), and the two boxes' overlap is
/// too small for NMS, which compares with the union. Left apart, the part starts a track of its
/// own and the vehicle is counted twice. So a rider lying inside a ridden vehicle's box, or a
/// ridden vehicle inside another one's box on the same wheels, is folded into the larger box.
fn fold_parts(mut detections: Vec<Detection>, rider_classes: &[usize], ridden_classes: &[usize]) -> Vec<Detection> {
    let part_of = |det: &Detection, outer: &Detection| {
        let inside = ridden_classes.contains(&outer.class) && outer.bbox.area() > det.bbox.area() && outer.bbox.overlap_of_smaller(&det.bbox) >= CONTAINED;
        let same_wheels = (det.bbox.y2 - outer.bbox.y2).abs() <= SAME_WHEELS * outer.bbox.height();
        inside && (rider_classes.contains(&det.class) || (ridden_classes.contains(&det.class) && same_wheels))
    };
    let mut folded = vec![false; detections.len()];
    // Largest first, so that a box is settled (kept, or a part) before a smaller one is folded
    // into it: a part goes into the largest kept box it lies in.
    let mut by_area: Vec<usize> = (0..detections.len()).collect();
    by_area.sort_by(|&a, &b| detections[b].bbox.area().total_cmp(&detections[a].bbox.area()));
    for &i in &by_area {
        let outer = (0..detections.len())
            .filter(|&j| !folded[j] && part_of(&detections[i], &detections[j]))
            .max_by(|&a, &b| detections[a].bbox.area().total_cmp(&detections[b].bbox.area()));
        if let Some(j) = outer {
            folded[i] = true;
            detections[j].score = detections[j].score.max(detections[i].score);
        }
    }
    detections.into_iter().zip(folded).filter(|(_, f)| !f).map(|(d, _)| d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERSON: usize = 0;
    const BICYCLE: usize = 1;
    const MOTORCYCLE: usize = 3;

    fn det(class: usize, x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Detection {
        Detection { bbox: BBox { x1, y1, x2, y2 }, class, score }
    }

    #[test]
    fn a_rider_and_a_pillion_become_part_of_their_motorbike() {
        // Seen from behind: the riders' boxes cover the top of the motorbike's.
        let bike = det(MOTORCYCLE, 0.50, 0.40, 0.54, 0.50, 0.4);
        let rider = det(PERSON, 0.495, 0.33, 0.545, 0.46, 0.7);
        let pillion = det(PERSON, 0.50, 0.35, 0.54, 0.47, 0.5);
        let out = merge(vec![bike, rider, pillion], &[PERSON], &[BICYCLE, MOTORCYCLE]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].class, MOTORCYCLE);
        assert_eq!(out[0].bbox, BBox { x1: 0.495, y1: 0.33, x2: 0.545, y2: 0.50 });
        assert_eq!(out[0].score, 0.7);
    }

    #[test]
    fn pedestrians_beside_or_in_front_of_a_motorbike_stay_pedestrians() {
        let bike = det(MOTORCYCLE, 0.50, 0.40, 0.54, 0.50, 0.6);
        let beside = det(PERSON, 0.56, 0.32, 0.60, 0.49, 0.8);
        // Standing in front, nearer the camera: feet well below the bike's wheels.
        let in_front = det(PERSON, 0.50, 0.36, 0.54, 0.58, 0.8);
        let out = merge(vec![bike.clone(), beside.clone(), in_front.clone()], &[PERSON], &[BICYCLE, MOTORCYCLE]);
        assert_eq!(out, vec![bike, beside, in_front]);
    }

    #[test]
    fn a_rider_boxed_twice_and_a_motorbike_boxed_twice_are_one_vehicle() {
        // The whole rider, and the upper body alone above the bike's top; the bike under its
        // rider, and the bike alone on the same wheels.
        let rider = det(PERSON, 0.50, 0.30, 0.54, 0.45, 0.7);
        let torso = det(PERSON, 0.50, 0.31, 0.535, 0.38, 0.6);
        let bike = det(MOTORCYCLE, 0.50, 0.40, 0.54, 0.50, 0.5);
        let bike_alone = det(MOTORCYCLE, 0.505, 0.42, 0.535, 0.495, 0.8);
        let out = merge(vec![bike, bike_alone, rider, torso], &[PERSON], &[BICYCLE, MOTORCYCLE]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].class, out[0].score), (MOTORCYCLE, 0.8));
        assert_eq!(out[0].bbox, BBox { x1: 0.50, y1: 0.30, x2: 0.54, y2: 0.50 });
    }

    #[test]
    fn a_motorbike_half_hidden_behind_a_rider_stays_a_vehicle() {
        // Further up the road: inside the near one's box, but on wheels well above its own.
        let near = det(MOTORCYCLE, 0.50, 0.30, 0.56, 0.60, 0.8);
        let far = det(MOTORCYCLE, 0.51, 0.32, 0.55, 0.45, 0.5);
        let out = merge(vec![near.clone(), far.clone()], &[PERSON], &[BICYCLE, MOTORCYCLE]);
        assert_eq!(out, vec![near, far]);
    }

    #[test]
    fn each_rider_sits_on_the_vehicle_under_them() {
        let left = det(MOTORCYCLE, 0.40, 0.40, 0.44, 0.50, 0.6);
        let right = det(BICYCLE, 0.43, 0.41, 0.47, 0.51, 0.6);
        let on_right = det(PERSON, 0.435, 0.32, 0.47, 0.47, 0.8);
        let out = merge(vec![left.clone(), right, on_right], &[PERSON], &[BICYCLE, MOTORCYCLE]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], left);
        assert_eq!((out[1].class, out[1].bbox.y1), (BICYCLE, 0.32));
    }
}
