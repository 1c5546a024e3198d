//! The bounded hand-over between a camera's GStreamer thread and the detector.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::health::CameraHealth;
use crate::types::Frame;

/// What to do when the detector falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Live cameras: drop the oldest waiting frame, so analysis stays current.
    DropOldest,
    /// Replaying a file: wait, so every selected frame is analysed.
    Block,
}

/// The sending side, held by the source.
#[derive(Clone)]
pub struct FrameSender {
    tx: Sender<Frame>,
    /// With [`Overflow::DropOldest`], a handle to pop the oldest frame when full. `Block` holds
    /// none, so that a vanished consumer unblocks the sender instead of leaving it waiting.
    oldest: Option<Receiver<Frame>>,
    health: Arc<CameraHealth>,
}

/// Drops are counted in `health.frames_dropped`.
pub fn frame_queue(capacity: usize, overflow: Overflow, health: Arc<CameraHealth>) -> (FrameSender, Receiver<Frame>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let oldest = (overflow == Overflow::DropOldest).then(|| rx.clone());
    (FrameSender { tx, oldest, health }, rx)
}

impl FrameSender {
    /// Queues a frame; `false` when the consumer is gone.
    pub fn push(&self, frame: Frame) -> bool {
        let Some(oldest) = &self.oldest else {
            return self.tx.send(frame).is_ok();
        };
        let mut frame = frame;
        loop {
            match self.tx.try_send(frame) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if oldest.try_recv().is_ok() {
                        CameraHealth::count(&self.health.frames_dropped);
                    }
                    frame = back;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer as gst;

    fn frame(seq: u64) -> Frame {
        gst::init().unwrap();
        Frame { camera: "c".into(), seq, pts: Default::default(), width: 1, height: 1, stride: 4, buffer: gst::Buffer::new(), native: None, source_run: 0, arrived: std::time::Instant::now() }
    }

    #[test]
    fn drop_oldest_keeps_the_newest_frames_and_counts_drops() {
        let health = CameraHealth::new("c", 0);
        let (tx, rx) = frame_queue(2, Overflow::DropOldest, health.clone());
        for seq in 0..5 {
            assert!(tx.push(frame(seq)));
        }
        assert_eq!(CameraHealth::get(&health.frames_dropped), 3);
        assert_eq!(rx.try_iter().map(|f| f.seq).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn a_blocking_queue_reports_a_vanished_consumer() {
        let (tx, rx) = frame_queue(1, Overflow::Block, CameraHealth::new("c", 0));
        assert!(tx.push(frame(0)));
        drop(rx);
        assert!(!tx.push(frame(1)));
    }
}
