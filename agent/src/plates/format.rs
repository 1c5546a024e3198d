//! Licence-plate formats: the one table a read must fit before it is reported, and how a fit is
//! written. A read that fits no format is not a plate (or not read right), and is reported as
//! unreadable: the table is what keeps the reader from guessing.
//!
//! The table is Vietnam's, after the Ministry of Public Security's Circular 79/2024/TT-BCA on
//! vehicle registration (in force 1 January 2025; the plate series and layouts are those of
//! Circulars 58/2020/TT-BCA and 24/2023/TT-BCA, which it replaced): a two-digit province code, a
//! series, then a serial of five digits written `NNN.NN` (four, `NNNN`, on plates issued before
//! 2015). Cars carry one-line (long) or two-line (short) plates, `30E-586.70`; motorbikes always
//! two lines, `29-B1` over `123.45`. Series letters never include I, J, O, Q or W. Another
//! country is another table of [`PlateFormat`]s.
//!
//! The plate font draws `D` and `0` alike (a round glyph with a straight left side), and the
//! recogniser, trained on other fonts, reads one for the other; `O` is not a plate letter at all.
//! Where the format wants a digit, a `D` or `O` is the `0` it looks like; where it wants a
//! letter, a `0` or `O` is the `D`. No other character is changed: `8`/`B`, `6`/`G`, `5`/`S`
//! are told apart by the recogniser itself, or the read fails.

/// One plate layout. In `head` and `tail`, `9` is a digit, `A` a letter, `S` the series (one of
/// `series`), any other character a separator printed as is. A two-line plate has `head` on top
/// and `tail` below; a one-line plate (`one_line`) reads `head` then `tail` on one line.
#[derive(Debug, Clone, Copy)]
pub struct PlateFormat {
    /// Named in alerts as `plate.format`, e.g. `vn_car`, `vn_motorbike`: what the plate is on.
    pub name: &'static str,
    pub head: &'static str,
    pub tail: &'static str,
    /// Printed between head and tail in the normalized text.
    pub joint: &'static str,
    /// Series an `S` may stand for, as printed (with `Đ`).
    pub series: &'static [&'static str],
    /// Whether the plate may be printed on one line (cars' long plates).
    pub one_line: bool,
}

/// Special car series: foreign-invested firms (LD), economic-military (KT), projects (DA),
/// tractors (MK), electric (MĐ), temporary (T), home-made (TĐ), limited-area (HC), trailers (R),
/// and foreign agencies' (NG diplomatic, QT international, NN foreign, CV staff).
const CAR_SPECIAL: &[&str] = &["LD", "KT", "DA", "MK", "MĐ", "TĐ", "HC", "NG", "QT", "NN", "CV"];
/// Electric motorbikes: `MĐ` and a digit.
const MOTORBIKE_ELECTRIC: &[&str] = &["MĐ"];

/// Vietnam's plates. Diplomatic plates' serials (`NNN-NN` after a country code) and military
/// plates (letters first) are not in the table, so they are reported unreadable, never misread.
pub const VIETNAM: &[PlateFormat] = &[
    PlateFormat { name: "vn_car", head: "99A", tail: "999.99", joint: "-", series: &[], one_line: true },
    PlateFormat { name: "vn_car_old", head: "99A", tail: "9999", joint: "-", series: &[], one_line: true },
    PlateFormat { name: "vn_car_special", head: "99S", tail: "999.99", joint: "-", series: CAR_SPECIAL, one_line: true },
    PlateFormat { name: "vn_car_special_old", head: "99S", tail: "9999", joint: "-", series: CAR_SPECIAL, one_line: true },
    PlateFormat { name: "vn_motorbike", head: "99-A9", tail: "999.99", joint: " ", series: &[], one_line: false },
    PlateFormat { name: "vn_motorbike_old", head: "99-A9", tail: "9999", joint: " ", series: &[], one_line: false },
    PlateFormat { name: "vn_moped", head: "99-AA", tail: "999.99", joint: " ", series: &[], one_line: false },
    PlateFormat { name: "vn_moped_old", head: "99-AA", tail: "9999", joint: " ", series: &[], one_line: false },
    PlateFormat { name: "vn_motorbike_electric", head: "99-S9", tail: "999.99", joint: " ", series: MOTORBIKE_ELECTRIC, one_line: false },
];

/// A read that fits a format.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// Normalized, e.g. `30E-586.70`, `29-B1 123.45`.
    pub text: String,
    pub format: &'static str,
}

/// Separators a plate is printed with (and the recogniser may read between characters).
fn is_separator(c: char) -> bool {
    is_dash(c) || matches!(c, '.' | ' ' | '·' | ':' | '_')
}

/// The hyphen printed after a car plate's head, as the recogniser may read it.
fn is_dash(c: char) -> bool {
    matches!(c, '-' | '—' | '–')
}

/// A read character where the format wants a letter: the round glyph's `0` (or an `O`, no
/// plate letter) is the `D`.
fn as_letter(c: char) -> char {
    if matches!(c, '0' | 'O') { 'D' } else { c }
}

/// A line's characters without separators, upper case; `None` when it holds anything that is
/// neither a plate character nor a separator (a character the recogniser misread as Chinese is
/// an unread character, not one to drop).
pub fn plate_chars(line: &str) -> Option<Vec<char>> {
    let mut chars = Vec::new();
    for c in line.chars() {
        match c.to_ascii_uppercase() {
            c if is_separator(c) => {}
            c @ ('0'..='9' | 'A'..='Z') => chars.push(c),
            // The recogniser's dictionary has no `Đ`: it reads `D`, or one of these.
            'Đ' | 'Ð' | 'đ' => chars.push('D'),
            _ => return None,
        }
    }
    Some(chars)
}

impl PlateFormat {
    /// Writes `chars` in `layout`, consuming them; `None` when they do not fit. The series is
    /// matched with its `Đ` or `D` read as `D` (the recogniser's dictionary lacks `Đ`) or as the
    /// round glyph's `0`, and written as printed.
    fn write(&self, layout: &str, chars: &mut &[char], out: &mut String) -> Option<()> {
        for slot in layout.chars() {
            match slot {
                '9' => {
                    let (&c, rest) = chars.split_first()?;
                    out.push(match c {
                        '0'..='9' => c,
                        'D' | 'O' => '0',
                        _ => return None,
                    });
                    *chars = rest;
                }
                'A' => {
                    let (&c, rest) = chars.split_first()?;
                    out.push(match as_letter(c) {
                        'I' | 'J' | 'Q' | 'W' => return None,
                        letter @ 'A'..='Z' => letter,
                        _ => return None,
                    });
                    *chars = rest;
                }
                'S' => {
                    let series = self.series.iter().find(|s| {
                        let printed: Vec<char> = s.chars().map(|c| if c == 'Đ' { 'D' } else { c }).collect();
                        chars.len() >= printed.len() && printed.iter().zip(chars.iter()).all(|(&p, &c)| p == as_letter(c))
                    })?;
                    out.push_str(series);
                    *chars = &chars[series.chars().count()..];
                }
                separator => out.push(separator),
            }
        }
        Some(())
    }

    /// The plate read as `lines` (top to bottom, separators removed), if it fits this format.
    fn fit(&self, lines: &[Vec<char>]) -> Option<Fitted> {
        let mut text = String::new();
        match lines {
            [top, bottom] => {
                let (mut top, mut bottom) = (top.as_slice(), bottom.as_slice());
                self.write(self.head, &mut top, &mut text)?;
                text.push_str(self.joint);
                self.write(self.tail, &mut bottom, &mut text)?;
                (top.is_empty() && bottom.is_empty()).then_some(())?;
            }
            [line] if self.one_line => {
                let mut line = line.as_slice();
                self.write(self.head, &mut line, &mut text)?;
                text.push_str(self.joint);
                self.write(self.tail, &mut line, &mut text)?;
                line.is_empty().then_some(())?;
            }
            _ => return None,
        }
        Some(Fitted { text, format: self.name })
    }
}

/// How many characters follow the last `.` of a line, if it has one: the serial's dot, which
/// a read must have where the format has it (a `586.7` is a digit short of `586.70`, not the
/// old four-digit `5867`).
fn after_dot(text: &str) -> Option<usize> {
    text.rfind('.').map(|at| text[at..].chars().filter(char::is_ascii_alphanumeric).count())
}

/// The plate the text lines (top to bottom, as read) are: the first format of `table` they fit.
/// On one line the head's end is not seen, and another format may fit the same read as other
/// characters (the round glyph a `D` in one and a `0` in the other: `51LD1234` is `51LD-1234`,
/// an old plate of the LD series, or `51L-012.34`): the hyphen after the head, where it was read,
/// says where the head ends, else such a read is no plate. Two lines show where the head ends (a
/// car's and a motorbike's differ only where the round glyph may be either, and the table's
/// order stands).
pub fn fit(table: &[PlateFormat], lines: &[&str]) -> Option<Fitted> {
    let chars: Vec<Vec<char>> = lines.iter().map(|l| plate_chars(l)).collect::<Option<_>>()?;
    let dot = lines.last().and_then(|l| after_dot(l));
    let mut fits: Vec<Fitted> = table.iter().filter(|f| dot.is_none() || dot == after_dot(f.tail)).filter_map(|format| format.fit(&chars)).collect();
    let [line] = lines else { return fits.into_iter().next() };
    // A separator read before or after the plate says nothing of where its head ends.
    let inside = line.trim_matches(is_separator);
    if let Some(at) = inside.find(is_dash) {
        let head = plate_chars(&inside[..at])?.len();
        fits.retain(|f| f.text.split('-').next().and_then(plate_chars).is_some_and(|h| h.len() == head));
    }
    let characters = |text: &str| plate_chars(text).unwrap_or_default();
    let first = fits.first()?;
    fits.iter().all(|f| characters(&f.text) == characters(&first.text)).then(|| first.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &[&str]) -> Option<(String, &'static str)> {
        fit(VIETNAM, lines).map(|f| (f.text, f.format))
    }

    #[test]
    fn two_line_and_one_line_car_plates() {
        assert_eq!(read(&["30E", "586.70"]), Some(("30E-586.70".into(), "vn_car")));
        assert_eq!(read(&["30E-586.70"]), Some(("30E-586.70".into(), "vn_car")));
        assert_eq!(read(&["30E58670"]), Some(("30E-586.70".into(), "vn_car")));
        assert_eq!(read(&["75A", "1234"]), Some(("75A-1234".into(), "vn_car_old")));
    }

    #[test]
    fn motorbike_plates_are_two_lines_and_split_where_printed() {
        assert_eq!(read(&["29-B1", "123.45"]), Some(("29-B1 123.45".into(), "vn_motorbike")));
        assert_eq!(read(&["75 AA", "1234"]), Some(("75-AA 1234".into(), "vn_moped_old")));
        // The same eight characters as a car's plate, split after the series digit.
        assert_eq!(read(&["29B1", "1234"]), Some(("29-B1 1234".into(), "vn_motorbike_old")));
        assert_eq!(read(&["29B", "11234"]), Some(("29B-112.34".into(), "vn_car")));
        // A motorbike's plate is never one line.
        assert_eq!(read(&["29B112345"]), None);
    }

    #[test]
    fn special_series_take_the_letter_the_recogniser_lacks() {
        assert_eq!(read(&["51LD", "123.45"]), Some(("51LD-123.45".into(), "vn_car_special")));
        assert_eq!(read(&["29TD", "01234"]), Some(("29TĐ-012.34".into(), "vn_car_special")));
        assert_eq!(read(&["29-MD1", "234.56"]), Some(("29-MĐ1 234.56".into(), "vn_motorbike_electric")));
        assert_eq!(read(&["29-MĐ1", "234.56"]), Some(("29-MĐ1 234.56".into(), "vn_motorbike_electric")));
        assert_eq!(read(&["29XY-123.45"]), None, "an unknown two-letter car series");
        // Two lines, it is a moped's plate.
        assert_eq!(read(&["29XY", "123.45"]), Some(("29-XY 123.45".into(), "vn_moped")));
    }

    #[test]
    fn a_read_two_formats_take_as_different_characters_is_no_plate_unless_its_hyphen_tells() {
        assert_eq!(read(&["51LD-1234"]), Some(("51LD-1234".into(), "vn_car_special_old")));
        assert_eq!(read(&["29TD-1234"]), Some(("29TĐ-1234".into(), "vn_car_special_old")));
        assert_eq!(read(&["51LD1234"]), None, "51LD-1234, or 51L-012.34 with the round glyph a 0");
        assert_eq!(read(&["51L01234"]), None, "the same, the glyph read as a 0");
        assert_eq!(read(&["51LD—1234"]), Some(("51LD-1234".into(), "vn_car_special_old")), "a long dash");
        assert_eq!(read(&["51LD-23.45"]), None, "a digit lost: the hyphen says the head is 51LD, which no format's tail then fits");
        assert_eq!(read(&["-30E58670-"]), Some(("30E-586.70".into(), "vn_car")), "separators read at the ends");
        assert_eq!(read(&["29T0", "01234"]), Some(("29TĐ-012.34".into(), "vn_car_special")));
        assert_eq!(read(&["51L-D1234"]), Some(("51L-012.34".into(), "vn_car")));
        assert_eq!(read(&["51L-012.34"]), Some(("51L-012.34".into(), "vn_car")), "the dot tells");
        // One set of characters in two layouts is one plate.
        assert_eq!(read(&["51LD", "1234"]), Some(("51LD-1234".into(), "vn_car_special_old")));
    }

    #[test]
    fn the_round_glyph_is_d_where_a_letter_goes_and_0_where_a_digit_goes() {
        assert_eq!(read(&["290", "044.88"]), Some(("29D-044.88".into(), "vn_car")));
        assert_eq!(read(&["3DE", "5887O"]), Some(("30E-588.70".into(), "vn_car")));
        assert_eq!(read(&["29-O1", "123.45"]), Some(("29-D1 123.45".into(), "vn_motorbike")));
        // Only that pair: an 8 where the series letter goes is not taken for a B.
        assert_eq!(read(&["298", "044.88"]), None);
    }

    #[test]
    fn reads_that_fit_nothing_are_refused() {
        assert_eq!(read(&["04488"]), None, "a serial without its top line");
        assert_eq!(read(&["3BE", "586.70"]), None, "a letter B where the province's digit is");
        assert_eq!(read(&["30I", "586.70"]), None, "I is no series letter");
        assert_eq!(read(&["30E", "586.7"]), None, "a digit short");
        assert_eq!(read(&["30E", "5867"]), Some(("30E-5867".into(), "vn_car_old")), "an old plate has no dot");
        assert_eq!(read(&["30E", "586.701"]), None, "a digit over");
        assert_eq!(read(&["30巨", "586.70"]), None, "a character that is no plate's");
        assert_eq!(read(&["30E", "586.70", "12"]), None, "three lines");
        assert_eq!(read(&[]), None);
    }
}
