//! Riders are part of what they ride. The detector sees a motorbike with its rider as two
//! objects, a `person` and a `motorcycle`; counted apart, the rider is a pedestrian crossing the
//! road beside every motorbike (or, where the small motorbike is missed, the only thing seen).
//! In Vietnamese traffic, where most vehicles are motorbikes, that doubles or halves every count.
//! So each person who sits on a ridden vehicle is folded into it: one detection of the ridden
//! class, boxed round rider and vehicle, whose bottom is still the wheels.
//!
//! Seen from behind, a rider hides the motorbike under them, and the detector boxes the pair as a
//! `person` and, on the same box, a `car` or `truck` (see [`twins`]): such a rider rides a
//! two-wheeler too.

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

/// A rider's box and a box of a vehicle class that is not ridden (a `car`, a `truck`) this much
/// alike are one object seen twice, as across vehicle classes in NMS.
const TWIN_IOU: f32 = super::nms::SAME_VEHICLE_IOU;

/// Whether `person` sits on `vehicle`: their widths overlap, the person is above the vehicle's
/// middle and reaches down into it, and does not stand below it.
fn rides(person: &BBox, vehicle: &BBox) -> bool {
    person.shared_width(vehicle) >= MIN_SHARED_WIDTH * person.width().min(vehicle.width())
        && person.center().y < vehicle.center().y
        && person.y2 > vehicle.y1
        && person.y2 <= vehicle.y2 + MAX_FEET_BELOW * vehicle.height()
}

/// The manifest's classes of riders, of ridden vehicles and of all vehicles, and its
/// `score_threshold`: what [`merge`] needs to know.
pub struct Classes<'a> {
    pub riders: &'a [usize],
    pub ridden: &'a [usize],
    pub vehicles: &'a [usize],
    /// A score that may start a track: a twin ([`twins`]) this strong would have begun a vehicle's
    /// track of its own, and makes its rider ride.
    pub min_twin_score: f32,
}

/// Settles each rider that has a twin: a box of a vehicle class that is not ridden (a car, truck or
/// bus), almost the same as the rider's (above [`TWIN_IOU`]). On the Vietnamese junction a rider
/// riding away was boxed `person` 0.63 and `car` 0.37 on one box (`truck` on other frames), and the
/// car box began a track of its own beside the rider's, a car as narrow as a person. A car or a
/// lorry is several times wider than a person, so a box of a person's shape that the detector also
/// calls a vehicle is a rider on a two-wheeler whose bike it cannot see: the twin is dropped, and
/// the rider is `riding` where the twin was strong enough to start a track (a walker is not made a
/// motorbike by a faint car box on them). The twin is the mistake too where the rider sits on a
/// ridden box. Otherwise, where the twin scores better, it is the vehicle and the rider box the
/// mistake (a person scored 0.13 on a car's side, the car 0.77): the rider is dropped. Riders are
/// settled best first, and a twin is one rider's. Returns the riders kept, each with whether it
/// rides, and the other detections less the twins.
fn twins(mut riders: Vec<Detection>, others: Vec<Detection>, classes: &Classes) -> (Vec<(Detection, bool)>, Vec<Detection>) {
    let not_ridden = |class: usize| classes.vehicles.contains(&class) && !classes.ridden.contains(&class);
    riders.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = Vec::with_capacity(riders.len());
    let mut twin = vec![false; others.len()];
    for rider in riders {
        let of_rider: Vec<usize> =
            (0..others.len()).filter(|&i| !twin[i] && not_ridden(others[i].class) && others[i].bbox.iou(&rider.bbox) > TWIN_IOU).collect();
        if of_rider.is_empty() {
            // Most riders: `merge` looks for their seat.
            kept.push((rider, false));
            continue;
        }
        let seated = others.iter().any(|v| classes.ridden.contains(&v.class) && rides(&rider.bbox, &v.bbox));
        if !seated && of_rider.iter().any(|&i| others[i].score > rider.score) {
            continue;
        }
        of_rider.iter().for_each(|&i| twin[i] = true);
        let riding = !seated && of_rider.iter().any(|&i| others[i].score >= classes.min_twin_score);
        kept.push((rider, riding));
    }
    (kept, others.into_iter().zip(twin).filter(|(_, t)| !t).map(|(d, _)| d).collect())
}

/// The detections with each rider folded into the ridden vehicle it sits on (the best-placed
/// one: the largest horizontal overlap). A ridden vehicle may carry several riders. A rider seen
/// riding a vehicle the detector named a four-wheeler ([`twins`]) is the first of the ridden
/// classes, its box the rider's.
pub fn merge(detections: Vec<Detection>, classes: &Classes) -> Vec<Detection> {
    let Some(&first_ridden) = classes.ridden.first() else { return detections };
    if classes.riders.is_empty() {
        return detections;
    }
    let (riders, others): (Vec<Detection>, Vec<Detection>) = detections.into_iter().partition(|d| classes.riders.contains(&d.class));
    let (riders, mut others) = twins(riders, others, classes);
    let mut merged = vec![false; riders.len()];
    let vehicles = others.iter().enumerate().filter(|(_, d)| classes.ridden.contains(&d.class)).map(|(i, d)| (i, d.bbox)).collect::<Vec<_>>();
    for (r, (rider, _)) in riders.iter().enumerate() {
        let shared = |v: &BBox| rider.bbox.shared_width(v);
        let seat = vehicles.iter().filter(|(_, v)| rides(&rider.bbox, v)).max_by(|a, b| shared(&a.1).total_cmp(&shared(&b.1)));
        if let Some(&(i, _)) = seat {
            let vehicle = &mut others[i];
            vehicle.bbox = vehicle.bbox.union(&rider.bbox);
            vehicle.score = vehicle.score.max(rider.score);
            merged[r] = true;
        }
    }
    let unseated = riders.into_iter().zip(merged).filter(|(_, m)| !m).map(|((rider, riding), _)| match riding {
        true => Detection { class: first_ridden, ..rider },
        false => rider,
    });
    others.extend(unseated);
    fold_parts(others, classes.riders, classes.ridden)
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
    const CAR: usize = 2;
    const TRUCK: usize = 7;
    const VEHICLES: [usize; 4] = [BICYCLE, CAR, MOTORCYCLE, TRUCK];
    const CLASSES: Classes = Classes { riders: &[PERSON], ridden: &[BICYCLE, MOTORCYCLE], vehicles: &VEHICLES, min_twin_score: 0.3 };
    const MOTORBIKES_FIRST: Classes = Classes { ridden: &[MOTORCYCLE, BICYCLE], ..CLASSES };

    fn det(class: usize, x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Detection {
        Detection { bbox: BBox { x1, y1, x2, y2 }, class, score }
    }

    #[test]
    fn a_rider_and_a_pillion_become_part_of_their_motorbike() {
        // Seen from behind: the riders' boxes cover the top of the motorbike's.
        let bike = det(MOTORCYCLE, 0.50, 0.40, 0.54, 0.50, 0.4);
        let rider = det(PERSON, 0.495, 0.33, 0.545, 0.46, 0.7);
        let pillion = det(PERSON, 0.50, 0.35, 0.54, 0.47, 0.5);
        let out = merge(vec![bike, rider, pillion], &CLASSES);
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
        let out = merge(vec![bike.clone(), beside.clone(), in_front.clone()], &CLASSES);
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
        let out = merge(vec![bike, bike_alone, rider, torso], &CLASSES);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].class, out[0].score), (MOTORCYCLE, 0.8));
        assert_eq!(out[0].bbox, BBox { x1: 0.50, y1: 0.30, x2: 0.54, y2: 0.50 });
    }

    #[test]
    fn a_motorbike_half_hidden_behind_a_rider_stays_a_vehicle() {
        // Further up the road: inside the near one's box, but on wheels well above its own.
        let near = det(MOTORCYCLE, 0.50, 0.30, 0.56, 0.60, 0.8);
        let far = det(MOTORCYCLE, 0.51, 0.32, 0.55, 0.45, 0.5);
        let out = merge(vec![near.clone(), far.clone()], &CLASSES);
        assert_eq!(out, vec![near, far]);
    }

    #[test]
    fn each_rider_sits_on_the_vehicle_under_them() {
        let left = det(MOTORCYCLE, 0.40, 0.40, 0.44, 0.50, 0.6);
        let right = det(BICYCLE, 0.43, 0.41, 0.47, 0.51, 0.6);
        let on_right = det(PERSON, 0.435, 0.32, 0.47, 0.47, 0.8);
        let out = merge(vec![left.clone(), right, on_right], &CLASSES);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], left);
        assert_eq!((out[1].class, out[1].bbox.y1), (BICYCLE, 0.32));
    }

    #[test]
    fn a_rider_the_detector_also_boxes_as_a_car_rides_a_two_wheeler() {
        // Riding away, the bike hidden under the rider: `person` and, on the same box, `car`
        // (the Vietnamese junction at 1.83 s: 0.63 and 0.37).
        let rider = det(PERSON, 0.567, 0.467, 0.619, 0.666, 0.63);
        let twin = det(CAR, 0.569, 0.492, 0.616, 0.673, 0.37);
        let car = det(CAR, 0.30, 0.40, 0.45, 0.60, 0.8);
        let out = merge(vec![car.clone(), twin.clone(), rider.clone()], &MOTORBIKES_FIRST);
        assert_eq!(out, vec![car, Detection { class: MOTORCYCLE, ..rider.clone() }]);
        // With the motorbike found under the rider as well, the rider sits on it as usual.
        let bike = det(BICYCLE, 0.57, 0.58, 0.615, 0.67, 0.4);
        let out = merge(vec![twin, rider.clone(), bike.clone()], &MOTORBIKES_FIRST);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].class, out[0].bbox, out[0].score), (BICYCLE, rider.bbox.union(&bike.bbox), 0.63));
    }

    #[test]
    fn a_person_on_a_cars_box_scoring_less_than_the_car_is_dropped() {
        let car = det(TRUCK, 0.494, 0.266, 0.567, 0.383, 0.77);
        let person = det(PERSON, 0.496, 0.27, 0.565, 0.38, 0.13);
        // A pedestrian beside the car, overlapping it far less, stays.
        let pedestrian = det(PERSON, 0.55, 0.25, 0.58, 0.39, 0.6);
        let out = merge(vec![car.clone(), person, pedestrian.clone()], &MOTORBIKES_FIRST);
        assert_eq!(out, vec![car, pedestrian]);
    }

    #[test]
    fn a_faint_twin_is_dropped_without_making_its_person_ride() {
        let walker = det(PERSON, 0.40, 0.30, 0.43, 0.40, 0.7);
        let faint = det(CAR, 0.401, 0.302, 0.431, 0.40, 0.12);
        assert_eq!(merge(vec![walker.clone(), faint], &MOTORBIKES_FIRST), vec![walker]);
    }

    #[test]
    fn a_twin_makes_one_rider_ride() {
        // Two person boxes of one rider, both almost the car box: the better one rides.
        let twin = det(CAR, 0.50, 0.30, 0.54, 0.40, 0.4);
        let rider = det(PERSON, 0.50, 0.30, 0.54, 0.39, 0.7);
        let again = det(PERSON, 0.501, 0.305, 0.541, 0.40, 0.5);
        let out = merge(vec![rider.clone(), again.clone(), twin], &MOTORBIKES_FIRST);
        assert_eq!(out, vec![Detection { class: MOTORCYCLE, ..rider }, again]);
    }

    #[test]
    fn a_rider_on_a_motorbike_box_outscored_by_a_car_twin_is_still_its_rider() {
        let rider = det(PERSON, 0.50, 0.30, 0.54, 0.44, 0.5);
        let twin = det(CAR, 0.50, 0.31, 0.54, 0.45, 0.6);
        let bike = det(MOTORCYCLE, 0.50, 0.38, 0.54, 0.46, 0.4);
        let out = merge(vec![twin, rider.clone(), bike.clone()], &MOTORBIKES_FIRST);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].class, out[0].bbox), (MOTORCYCLE, rider.bbox.union(&bike.bbox)));
    }
}
