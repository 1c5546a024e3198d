//! Kalman filter on a box: centre x, centre y, and the logarithms of width and height, each with
//! its rate, time in seconds.
//!
//! Sizes are filtered as logarithms because an approaching or receding vehicle's box grows or
//! shrinks by a factor per second, not by an amount: at 5 fps a car driving towards the camera
//! grows by half between two frames, which a size that stays put between observations (or grows
//! linearly) mistakes for another object. The centre's rate is kept in proportion to the box's
//! size for the same reason: under perspective a vehicle that grows also speeds up on screen.
//!
//! The dimensions are independent (diagonal noise), so the filter is four 2-state filters
//! (value, rate). Position noise is scaled by the box size, so one set of constants fits near and
//! far objects.

use crate::types::BBox;

/// Measurement noise: detector boxes jitter by about this fraction of their size, in position
/// and in size alike.
const MEASUREMENT_STD: f32 = 0.1;
/// Unmodelled acceleration: box sizes per s² for the centre (braking, turning), and change of the
/// growth rate per s for the sizes (an approaching vehicle's growth rate itself rises as it
/// nears). Larger values let a coasting track's gate grow until it swallows a neighbour.
const ACCEL_STD: [f32; 4] = [1.5, 1.5, 3.0, 3.0];
/// Rate uncertainty of a new track: box sizes per s for the centre (a car crossing its own length
/// between two frames at 5 fps is within about one standard deviation), and growth per s for the
/// sizes (a car near the camera doubling in 0.3 s is within about two).
const INITIAL_RATE_STD: [f32; 4] = [4.2, 4.2, 1.5, 1.5];
/// Most a prediction changes a log size, and scales the centre's rate, in one step: e (2.7x).
/// A track predicted over a long gap (frames the motion gate skipped, a stream that jumped ahead)
/// would otherwise grow without bound, and a box that covers the frame matches anything.
const MAX_LOG_STEP: f32 = 1.0;

#[derive(Debug, Clone, Copy)]
struct Axis {
    value: f32,
    rate: f32,
    /// Covariance [[pp, pv], [pv, vv]].
    pp: f32,
    pv: f32,
    vv: f32,
}

#[derive(Debug, Clone)]
pub struct BoxFilter {
    axes: [Axis; 4],
}

fn measurement(b: &BBox) -> [f32; 4] {
    let c = b.center();
    [c.x, c.y, b.width().max(1e-4).ln(), b.height().max(1e-4).ln()]
}

/// The size each axis' noise is relative to: width for x, height for y; the log sizes are
/// relative already.
fn scales(m: &[f32; 4]) -> [f32; 4] {
    [m[2].exp(), m[3].exp(), 1.0, 1.0]
}

impl BoxFilter {
    pub fn new(b: &BBox) -> BoxFilter {
        let m = measurement(b);
        let s = scales(&m);
        let axes = std::array::from_fn(|i| Axis {
            value: m[i],
            rate: 0.0,
            pp: (MEASUREMENT_STD * s[i]).powi(2),
            pv: 0.0,
            vv: (INITIAL_RATE_STD[i] * s[i]).powi(2),
        });
        BoxFilter { axes }
    }

    pub fn predict(&mut self, dt: f32) {
        let s = scales(&self.values());
        // The centre's rate follows the size over the step (x with the width, y with the height).
        let log_step = |rate: f32| (rate * dt).clamp(-MAX_LOG_STEP, MAX_LOG_STEP);
        let growth = [log_step(self.axes[2].rate).exp(), log_step(self.axes[3].rate).exp()];
        for (i, a) in self.axes.iter_mut().enumerate() {
            let q = (ACCEL_STD[i] * s[i]).powi(2);
            let g = if i < 2 { growth[i] } else { 1.0 };
            // Moved at the mean of the old and the new rate.
            a.value += if i < 2 { a.rate * dt * (1.0 + g) / 2.0 } else { log_step(a.rate) };
            a.pp += 2.0 * dt * a.pv + dt * dt * a.vv + q * dt.powi(3) / 3.0;
            a.pv += dt * a.vv + q * dt * dt / 2.0;
            a.vv += q * dt;
            a.rate *= g;
            a.pv *= g;
            a.vv *= g * g;
        }
    }

    pub fn update(&mut self, b: &BBox) {
        let m = measurement(b);
        let s = scales(&m);
        for (i, a) in self.axes.iter_mut().enumerate() {
            let r = (MEASUREMENT_STD * s[i]).powi(2);
            let innovation = m[i] - a.value;
            let total = a.pp + r;
            let (k_p, k_v) = (a.pp / total, a.pv / total);
            a.value += k_p * innovation;
            a.rate += k_v * innovation;
            let (pp, pv, vv) = (a.pp, a.pv, a.vv);
            a.pp = (1.0 - k_p) * pp;
            a.pv = (1.0 - k_p) * pv;
            a.vv = vv - k_v * pv;
        }
    }

    /// Squared Mahalanobis distance of a measured box from the predicted one (4 degrees of freedom).
    pub fn distance_sq(&self, b: &BBox) -> f32 {
        let m = measurement(b);
        let s = scales(&m);
        self.axes
            .iter()
            .enumerate()
            .map(|(i, a)| (m[i] - a.value).powi(2) / (a.pp + (MEASUREMENT_STD * s[i]).powi(2)))
            .sum()
    }

    fn values(&self) -> [f32; 4] {
        self.axes.map(|a| a.value)
    }

    pub fn bbox(&self) -> BBox {
        let [cx, cy, lw, lh] = self.values();
        BBox::from_center(cx, cy, lw.exp(), lh.exp())
    }

    /// Estimated velocity of the centre, normalized units per second.
    pub fn velocity(&self) -> (f32, f32) {
        (self.axes[0].rate, self.axes[1].rate)
    }

    /// Estimated growth of width and height, as a factor per second's logarithm (0: steady).
    pub fn growth(&self) -> (f32, f32) {
        (self.axes[2].rate, self.axes[3].rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_velocity_and_predicts_ahead() {
        let at = |x: f32| BBox::from_center(x, 0.5, 0.1, 0.1);
        let mut f = BoxFilter::new(&at(0.1));
        for step in 1..6 {
            f.predict(0.2);
            f.update(&at(0.1 + 0.1 * step as f32));
        }
        // 0.1 per 0.2 s = 0.5 per second.
        let (vx, vy) = f.velocity();
        assert!((vx - 0.5).abs() < 0.05, "vx {vx}");
        assert!(vy.abs() < 0.01);
        f.predict(0.2);
        assert!((f.bbox().center().x - 0.7).abs() < 0.02);
        assert!(f.distance_sq(&at(0.7)) < 1.0);
        assert!(f.distance_sq(&at(0.3)) > 20.0);
    }

    /// A track predicted over a minute (frames the motion gate skipped) with the growth its last
    /// boxes showed keeps a box of bounded size.
    #[test]
    fn a_long_gap_grows_the_box_at_most_by_e() {
        let mut f = BoxFilter::new(&BBox::from_center(0.5, 0.5, 0.1, 0.1));
        for step in 1..4 {
            f.predict(0.2);
            f.update(&BBox::from_center(0.5, 0.5, 0.1 * 1.1f32.powi(step), 0.1 * 1.1f32.powi(step)));
        }
        let before = f.bbox().width();
        f.predict(60.0);
        let after = f.bbox().width();
        assert!(after.is_finite() && after <= before * std::f32::consts::E * 1.001, "{before} → {after}");
    }

    #[test]
    fn an_approaching_box_is_predicted_grown_and_faster() {
        // Grows 1.25x per 0.2 s and moves down by its own (growing) height.
        let boxes: Vec<BBox> = (0..5)
            .scan((0.3f32, 0.05f32), |(cy, h), _| {
                let b = BBox::from_center(0.5, *cy, *h * 0.6, *h);
                *cy += *h;
                *h *= 1.25;
                Some(b)
            })
            .collect();
        let mut f = BoxFilter::new(&boxes[0]);
        for b in &boxes[1..4] {
            f.predict(0.2);
            f.update(b);
        }
        f.predict(0.2);
        let (p, want) = (f.bbox(), boxes[4]);
        assert!((p.height() / want.height() - 1.0).abs() < 0.12, "height {} want {}", p.height(), want.height());
        assert!((p.center().y - want.center().y).abs() < 0.3 * want.height(), "y {} want {}", p.center().y, want.center().y);
        assert!(f.distance_sq(&want) < 4.0, "{}", f.distance_sq(&want));
    }
}
