//! Constant-velocity Kalman filter on a box (centre x, centre y, width, height), with time in seconds.
//!
//! The state dimensions are independent (diagonal noise), so the filter is four 2-state filters
//! (value, rate). Noise is scaled by the box size, so one set of constants fits near and far objects.

use crate::types::BBox;

/// Measurement noise, as a fraction of the box size: detector boxes jitter by about this much.
const MEASUREMENT_STD: f32 = 0.1;
/// Unmodelled acceleration, box sizes per s² (braking, turning, perspective). Larger values let
/// a coasting track's gate grow until it swallows a neighbouring vehicle.
const ACCEL_STD: [f32; 4] = [1.5, 1.5, 0.5, 0.5];
/// Speed uncertainty of a new track, box sizes per s: a car crossing its own length between two
/// frames at 5 fps is within about one standard deviation.
const INITIAL_RATE_STD: [f32; 4] = [4.2, 4.2, 0.35, 0.35];

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
    [c.x, c.y, b.width(), b.height()]
}

/// The size each axis' noise is relative to: width for x and w, height for y and h.
fn scales(m: &[f32; 4]) -> [f32; 4] {
    let (w, h) = (m[2].max(1e-3), m[3].max(1e-3));
    [w, h, w, h]
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
        for (i, a) in self.axes.iter_mut().enumerate() {
            let q = (ACCEL_STD[i] * s[i]).powi(2);
            a.value += a.rate * dt;
            a.pp += 2.0 * dt * a.pv + dt * dt * a.vv + q * dt.powi(3) / 3.0;
            a.pv += dt * a.vv + q * dt * dt / 2.0;
            a.vv += q * dt;
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
        let [cx, cy, w, h] = self.values();
        BBox::from_center(cx, cy, w.max(1e-4), h.max(1e-4))
    }

    /// Estimated velocity of the centre, normalized units per second.
    #[cfg(test)]
    pub fn velocity(&self) -> (f32, f32) {
        (self.axes[0].rate, self.axes[1].rate)
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
}
