//! Pipelines left behind by a state change that hung, held for the life of the process rather
//! than of the camera's supervisor. Freeing one would wait on the locks its state change waits
//! on, so it is kept referenced until that change ends, if it ever does. A reload that stops or
//! replaces the camera ends its supervisor, not the threads and memory its pipelines hold: kept
//! here, they are still counted (`abandoned_held`, which the watchdog's limit reads) when the
//! camera's id runs again, and still let go of when their change ends.

use std::sync::Mutex;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::Changed;
use crate::types::CameraId;

/// A pipeline left behind: its state change hung.
pub(super) struct LeftBehind {
    pub camera: CameraId,
    pub pipeline: gst::Pipeline,
    /// The state it was changing to, and where its helper says it is done.
    pub target: gst::State,
    pub done: crossbeam_channel::Receiver<Changed>,
}

static HELD: Mutex<Vec<LeftBehind>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<LeftBehind>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps `left` until its state change ends.
pub(super) fn hold(left: LeftBehind) {
    held().push(left);
}

/// Lets go of the pipelines, any camera's, whose state change has ended after all; one that got
/// anywhere but NULL is taken down on a thread of its own, which is left to it.
pub(super) fn release() {
    let ended: Vec<LeftBehind> = {
        let mut held = held();
        if held.iter().all(|l| l.done.is_empty()) {
            return;
        }
        let (ended, still): (Vec<LeftBehind>, Vec<LeftBehind>) = std::mem::take(&mut *held).into_iter().partition(|l| !l.done.is_empty());
        *held = still;
        ended
    };
    for left in ended.into_iter().filter(|l| l.target != gst::State::Null) {
        let name = format!("release-{}", left.camera);
        let camera = left.camera.clone();
        if let Err(e) = std::thread::Builder::new().name(name).spawn(move || left.pipeline.set_state(gst::State::Null)) {
            tracing::warn!(camera = %camera, "cannot start a thread to free a pipeline left behind: {e}");
        }
    }
}

/// How many pipelines of `camera` are held.
pub(super) fn held_by(camera: &CameraId) -> u64 {
    held().iter().filter(|l| l.camera == *camera).count() as u64
}
