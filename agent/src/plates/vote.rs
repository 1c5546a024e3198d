//! One plate from a vehicle's frames: the reads of its best few frames voted on.

use serde::Serialize;

use super::{FrameRead, PlateRead};

/// Why a vehicle's plate is not reported, in the order of how near it came to a read (the vote
/// reports the nearest of its frames').
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unread {
    /// No text where a plate would be.
    NotFound,
    /// The vehicle or its plate's lines are too few pixels high to read.
    TooSmall,
    /// Text was found, too blurred to read.
    Blurred,
    /// Text was found and read, and fits no plate format (or a character was unsure).
    Unreadable,
    /// A plate was read, but not surely enough: on one frame only, with unsure characters, or
    /// only by the frame's edge (where characters may be cut). Or not read: a track's second
    /// crossing of a line, which may be another vehicle's.
    Unsure,
    /// Frames gave different plates, none surely enough.
    Disagreeing,
}

/// A vehicle's plate, as alerts carry it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plate {
    pub text: String,
    /// 0..1: the agreeing frames' read confidence, shared over the frames that read a plate
    /// (at least two: a plate read on one frame only is half as sure), except reads by the
    /// frame's edge that confirm no whole read.
    pub confidence: f32,
    /// The format it fits, e.g. `vn_motorbike`.
    pub format: &'static str,
}

/// A vehicle's plate, or why there is none.
pub type PlateOutcome = Result<Plate, Unread>;

/// A plate is reported at this confidence or above.
pub const MIN_CONFIDENCE: f32 = 0.6;

/// The plate most of `reads` agree on, weighted by their confidence, if sure enough; else the
/// reason, the one that came closest to a read.
pub fn vote(reads: &[FrameRead]) -> PlateOutcome {
    let plates_read: Vec<&PlateRead> = reads.iter().filter_map(|r| r.as_ref().ok()).collect();
    // A read by the frame's edge may have lost characters beyond it: it confirms a plate read
    // whole on another frame, and otherwise counts neither for nor against one.
    let plates: Vec<&PlateRead> = plates_read.iter().copied().filter(|p| !p.at_frame_edge || plates_read.iter().any(|w| !w.at_frame_edge && w.text == p.text)).collect();
    if plates.is_empty() && !plates_read.is_empty() {
        return Err(Unread::Unsure);
    }
    let mut tally: Vec<(&str, f32, usize)> = Vec::new();
    for plate in &plates {
        match tally.iter_mut().find(|(text, _, _)| *text == plate.text) {
            Some(entry) => entry.1 += plate.confidence,
            None => tally.push((&plate.text, plate.confidence, tally.len())),
        }
    }
    let Some(&(text, weight, _)) = tally.iter().max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2))) else {
        return Err(reads.iter().filter_map(|r| r.as_ref().err()).copied().max().unwrap_or(Unread::NotFound));
    };
    let confidence = weight / plates.len().max(2) as f32;
    if confidence < MIN_CONFIDENCE {
        return Err(if tally.len() > 1 { Unread::Disagreeing } else { Unread::Unsure });
    }
    let first = plates.iter().find(|p| p.text == text).expect("the winner was tallied from these");
    Ok(Plate { text: text.to_string(), confidence, format: first.format })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, confidence: f32) -> FrameRead {
        Ok(PlateRead { text: text.into(), format: "vn_car", confidence, region: opencv::core::Rect::default(), at_frame_edge: false })
    }

    fn at_edge(text: &str, confidence: f32) -> FrameRead {
        read(text, confidence).map(|p| PlateRead { at_frame_edge: true, ..p })
    }

    #[test]
    fn agreeing_frames_outvote_a_misread() {
        let plate = vote(&[read("30E-586.70", 0.95), read("30E-586.10", 0.9), read("30E-586.70", 0.97)]).unwrap();
        assert_eq!(plate.text, "30E-586.70");
        assert!((plate.confidence - (0.95 + 0.97) / 3.0).abs() < 1e-6, "{}", plate.confidence);
    }

    #[test]
    fn one_frame_alone_is_not_enough_unless_alone_in_a_pair() {
        assert_eq!(vote(&[read("30E-586.70", 0.98), Err(Unread::TooSmall), Err(Unread::NotFound)]), Err(Unread::Unsure));
        assert_eq!(vote(&[read("30E-586.70", 0.9), read("30E-586.70", 0.8)]).map(|p| p.text), Ok("30E-586.70".into()));
    }

    #[test]
    fn reads_by_the_frames_edge_only_confirm_a_whole_one() {
        // The Tucson entering at the left edge: `420.10` cut to `2010` on one frame.
        assert_eq!(vote(&[read("30G-420.10", 0.97), at_edge("30G-2010", 0.96), Err(Unread::NotFound)]), Err(Unread::Unsure));
        assert_eq!(vote(&[at_edge("30G-2010", 0.96), at_edge("30G-2010", 0.95)]), Err(Unread::Unsure), "cut the same way twice");
        // The Sorento: its whole plate by the edge on one frame, away from it on another.
        let plate = vote(&[at_edge("51F-737.01", 0.94), read("51F-737.01", 0.99), Err(Unread::Unreadable)]).unwrap();
        assert!((plate.confidence - (0.94 + 0.99) / 2.0).abs() < 1e-6, "{}", plate.confidence);
    }

    #[test]
    fn an_even_split_is_disagreeing() {
        assert_eq!(vote(&[read("30E-586.70", 0.95), read("30E-586.10", 0.95)]), Err(Unread::Disagreeing));
    }

    #[test]
    fn without_a_read_the_reason_closest_to_one() {
        assert_eq!(vote(&[Err(Unread::NotFound), Err(Unread::Blurred), Err(Unread::TooSmall)]), Err(Unread::Blurred));
        assert_eq!(vote(&[]), Err(Unread::NotFound));
    }
}
