//! Non-maximum suppression, per class except for a merge group suppressed as one class: a vehicle
//! the detector sees as both "car" and "truck" must stay one object (the tracker votes on its class).
//! Within the merge group a box lying almost wholly inside a better one is suppressed too: the
//! detector often adds a box for the rear or front half of a large vehicle, which overlaps the
//! whole vehicle's box too little for IoU to catch. So is a weak box round a better one: at times
//! the detector boxes a whole stretch of road as one vehicle. But a car lying in such a box is no
//! part of it, even when the box scores better (see [`PART_MIN_AREA_SHARE`]).
//! Across all vehicle classes, a box almost the same as a better one is the same vehicle seen as
//! another class (see [`SAME_VEHICLE_IOU`]).

use crate::types::Detection;

/// Share of the smaller box inside the larger above which it is taken as part of the larger.
pub(super) const CONTAINED: f32 = 0.85;
/// A box inside a better one is a part of it only when it is at least this share of the better
/// box's area: a half or a third of a bus is a part of it, a car lying in a box round a whole
/// stretch of road is not (on the arterial at 640 px the detector drew one round the road, scoring
/// 0.4, above cars in it).
const PART_MIN_AREA_SHARE: f32 = 0.2;
/// Overlap above which two boxes of vehicle classes not in one merge group are one vehicle: the
/// detector gave a car half hidden behind the taxi following it both a `car` box and, scoring
/// better, a `motorcycle` box (IoU 0.8 to 0.98; the Vietnamese junction played backwards), and
/// both began a track. A motorbike and a car that are two vehicles overlap far less: the motorbike
/// is under half the car's width.
pub const SAME_VEHICLE_IOU: f32 = 0.7;

/// `merge_classes` are suppressed against each other as one class; then what is left of
/// `vehicle_classes` (all classes of vehicles) across groups, only where boxes are almost the same
/// ([`SAME_VEHICLE_IOU`]). In that order: a `motorcycle` box suppressing first the `car` box it
/// shares a vehicle with would leave a second `car` box that the first one held down.
pub fn nms(mut detections: Vec<Detection>, iou_threshold: f32, merge_classes: &[usize], vehicle_classes: &[usize]) -> Vec<Detection> {
    let merged = |class: usize| merge_classes.contains(&class);
    let vehicle = |class: usize| vehicle_classes.contains(&class);
    let group = |class: usize| if merged(class) { usize::MAX } else { class };
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let keep = |detections: Vec<Detection>, suppresses: &dyn Fn(&Detection, &Detection) -> bool| {
        let mut kept: Vec<Detection> = Vec::with_capacity(detections.len());
        for det in detections {
            if !kept.iter().any(|k| suppresses(k, &det)) {
                kept.push(det);
            }
        }
        kept
    };
    let within_groups = keep(detections, &|k, det| {
        group(k.class) == group(det.class)
            && (k.bbox.iou(&det.bbox) > iou_threshold || (merged(det.class) && k.bbox.overlap_of_smaller(&det.bbox) > CONTAINED && det.bbox.area() >= PART_MIN_AREA_SHARE * k.bbox.area()))
    });
    keep(within_groups, &|k, det| group(k.class) != group(det.class) && vehicle(k.class) && vehicle(det.class) && k.bbox.iou(&det.bbox) > SAME_VEHICLE_IOU)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BBox;

    fn det(x: f32, class: usize, score: f32) -> Detection {
        Detection { bbox: BBox { x1: x, y1: 0.0, x2: x + 0.2, y2: 0.2 }, class, score }
    }

    #[test]
    fn keeps_best_of_overlapping_same_class() {
        let out = nms(vec![det(0.0, 2, 0.6), det(0.01, 2, 0.9), det(0.5, 2, 0.5)], 0.45, &[], &[]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
    }

    #[test]
    fn car_and_truck_on_one_vehicle_become_one_object() {
        let (car, truck, person) = (2, 7, 0);
        let dets = vec![det(0.0, car, 0.7), det(0.01, truck, 0.6), det(0.0, person, 0.8)];
        let merged = nms(dets.clone(), 0.45, &[car, truck], &[]);
        assert_eq!(merged.iter().map(|d| d.class).collect::<Vec<_>>(), vec![person, car]);
        // Without the merge group the truck box would survive beside the car.
        assert_eq!(nms(dets, 0.45, &[], &[]).len(), 3);
    }

    #[test]
    fn a_box_inside_a_better_vehicle_box_is_part_of_it() {
        let car = 2;
        let whole = Detection { bbox: BBox { x1: 0.4, y1: 0.4, x2: 0.7, y2: 0.8 }, class: car, score: 0.8 };
        let rear_half = Detection { bbox: BBox { x1: 0.42, y1: 0.45, x2: 0.55, y2: 0.78 }, class: car, score: 0.5 };
        assert!(whole.bbox.iou(&rear_half.bbox) < 0.45);
        assert_eq!(nms(vec![whole.clone(), rear_half.clone()], 0.45, &[car], &[]), vec![whole]);
    }

    /// The detector sometimes boxes a whole stretch of road as one vehicle, at times scoring it
    /// above the cars in it: they are not its parts.
    #[test]
    fn a_car_inside_a_box_round_the_road_is_kept() {
        let (car, truck) = (2, 7);
        let road = Detection { bbox: BBox { x1: 0.02, y1: 0.06, x2: 0.97, y2: 0.77 }, class: truck, score: 0.4 };
        let in_it = Detection { bbox: BBox { x1: 0.13, y1: 0.39, x2: 0.36, y2: 0.56 }, class: car, score: 0.35 };
        assert!(road.bbox.overlap_of_smaller(&in_it.bbox) > CONTAINED);
        assert_eq!(nms(vec![road.clone(), in_it.clone()], 0.45, &[car, truck], &[]), vec![road.clone(), in_it.clone()]);
        // Scoring below the car, the box round the road is dropped.
        let weak_road = Detection { score: 0.3, ..road };
        assert_eq!(nms(vec![weak_road, in_it.clone()], 0.45, &[car, truck], &[]), vec![in_it]);
    }

    /// The junction played backwards: a car half hidden behind the taxi following it was boxed
    /// both as a `car` and, scoring better, as a `motorcycle`. A motorbike beside a car is kept.
    #[test]
    fn a_vehicle_boxed_as_two_vehicle_classes_is_one_object() {
        let (car, motorcycle, truck) = (2, 3, 7);
        let seen_as_car = Detection { bbox: BBox { x1: 0.593, y1: 0.336, x2: 0.669, y2: 0.441 }, class: car, score: 0.29 };
        let seen_as_motorcycle = Detection { bbox: BBox { x1: 0.598, y1: 0.337, x2: 0.668, y2: 0.442 }, class: motorcycle, score: 0.6 };
        let vehicles = [car, motorcycle, truck];
        assert_eq!(nms(vec![seen_as_car.clone(), seen_as_motorcycle.clone()], 0.45, &[car, truck], &vehicles), vec![seen_as_motorcycle.clone()]);
        let beside = Detection { bbox: BBox { x1: 0.64, y1: 0.36, x2: 0.68, y2: 0.45 }, class: motorcycle, score: 0.6 };
        assert_eq!(nms(vec![seen_as_car.clone(), beside.clone()], 0.45, &[car, truck], &vehicles).len(), 2);
        // Not vehicle classes: both kept.
        assert_eq!(nms(vec![seen_as_car.clone(), seen_as_motorcycle.clone()], 0.45, &[car, truck], &[]).len(), 2);
        // A second, weaker car box on the vehicle, held down by the first car box, stays held
        // down when the motorcycle box takes the first.
        let second_car = Detection { bbox: BBox { x1: 0.56, y1: 0.33, x2: 0.66, y2: 0.44 }, class: car, score: 0.2 };
        assert!(second_car.bbox.iou(&seen_as_car.bbox) > 0.45 && second_car.bbox.iou(&seen_as_motorcycle.bbox) < SAME_VEHICLE_IOU);
        assert_eq!(nms(vec![seen_as_car, seen_as_motorcycle.clone(), second_car], 0.45, &[car, truck], &vehicles), vec![seen_as_motorcycle]);
    }
}
