use super::*;

fn resources() -> Resources {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    Resources { models_dir: root.join("models"), pipelines_dir: root.join("pipelines"), credentials_dir: None }
}

/// That `errors` are exactly `expect`, in order, each starting with its text.
fn assert_listed(errors: &[String], expect: &[&str]) {
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    for (got, expected) in errors.iter().zip(expect) {
        assert!(got.starts_with(expected), "'{got}' is not '{expected}…' in {errors:#?}");
    }
}

/// Every error of a file, structural then semantic, as `canh check` lists them.
fn errors_of(text: &str) -> Vec<String> {
    let Parsed { config, mut errors, placeholders } = SiteConfig::parse_all(text);
    errors.extend(config.map(|c| without_placeholders(c.validate(&resources()), &placeholders)).unwrap_or_default());
    errors.iter().map(ToString::to_string).collect()
}

const GOOD: &str = r#"
site = "hue"
[[cameras]]
id = "cam1"
source = "rtsp://admin:hunter2@10.0.0.5/sub"
[[cameras.lines]]
id = "north"
p1 = [0.5, 1.0]
p2 = [0.5, 0.0]
"#;

#[test]
fn a_good_config_has_no_errors_and_gets_defaults() {
    assert_eq!(errors_of(GOOD), Vec::<String>::new());
    let c = SiteConfig::parse(GOOD).unwrap();
    assert_eq!(c.counts_interval_s, 60);
    assert_eq!(c.cameras[0].analytics_fps, 5);
    assert_eq!(c.cameras[0].model, "yolox_nano");
    assert_eq!(c.cameras[0].lines[0].confirm_frames, 2);
}

#[test]
fn every_semantic_error_is_reported_with_its_key_path() {
    let text = r#"
site = "hue site"
[[cameras]]
id = "cam1"
source = "rtsp://admin:hunter2@10.0.0.5/sub"
pipeline = "nope"
[[cameras]]
id = "cam1"
source = "/no/such/clip.mp4"
model = "missing"
[[cameras.lines]]
id = "a"
p1 = [1.5, 0.2]
p2 = [0.5, -0.1]
classes = ["car", "spaceship"]
"#;
    let errors = errors_of(text);
    let expect = [
        "site: 'hue site' may hold only letters",
        "cameras[0].pipeline: pipeline template 'nope'",
        "cameras[1].id: 'cam1' is used by another camera",
        "cameras[1].source: file /no/such/clip.mp4 does not exist",
        "cameras[1].model: model manifest",
        "cameras[1].lines[0].p1: x must be within 0..1",
        "cameras[1].lines[0].p2: y must be within 0..1",
    ];
    for e in expect {
        assert!(errors.iter().any(|got| got.starts_with(e)), "missing '{e}' in {errors:#?}");
    }
    assert!(errors.iter().all(|e| !e.contains("hunter2")), "{errors:#?}");
}

#[test]
fn unknown_classes_are_named() {
    let text = GOOD.replace("p2 = [0.5, 0.0]", "p2 = [0.5, 0.0]\nclasses = [\"car\", \"spaceship\"]");
    assert_eq!(errors_of(&text), vec!["cameras[0].lines[0].classes[1]: 'spaceship' is not a class this camera's model reports (see its manifest's labels and read_as)"]);
    // A class the manifest reads as another is never reported: a line of trains would count nothing.
    let text = GOOD.replace("p2 = [0.5, 0.0]", "p2 = [0.5, 0.0]\nclasses = [\"train\"]");
    assert_eq!(errors_of(&text), vec!["cameras[0].lines[0].classes[0]: 'train' is not a class this camera's model reports (see its manifest's labels and read_as)"]);
}

#[test]
fn unknown_keys_and_wrong_types_name_the_key_and_line() {
    let errors = errors_of(&GOOD.replace("p2 = [0.5, 0.0]", "p2 = [0.5, 0.0]\ndwell = 3"));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("cameras[0].lines[0].dwell: unknown field `dwell`"), "{errors:?}");
    assert!(errors[0].contains("(line 10)"), "{errors:?}");
    let errors = errors_of(&GOOD.replace("id = \"cam1\"", "id = \"cam1\"\nanalytics_fps = \"fast\""));
    assert!(errors[0].starts_with("cameras[0].analytics_fps: invalid type"), "{errors:?}");
}

#[test]
fn structural_and_semantic_errors_are_listed_together_in_file_order() {
    let text = r#"
site = "hue site"
counts_interval_s = 0
[[cameras]]
id = "cam 1"
source = "rtsp://10.0.0.5/sub"
analytics_fps = "five"
colour = "red"
[[cameras.lines]]
id = "a"
p1 = [1.5, "x"]
p2 = [0.5, -0.1]
[[cameras]]
id = "cam2"
source = "/no/such/clip.mp4"
"#;
    let errors = errors_of(text);
    let expect = [
        "cameras[0].analytics_fps: invalid type: string \"five\", expected u32 (line 7)",
        "cameras[0].colour: unknown field `colour`",
        "cameras[0].lines[0].p1[1]: invalid type: string \"x\", expected f32 (line 11)",
        "site: 'hue site' may hold only letters",
        "counts_interval_s: must be 1 to 604800 seconds",
        "cameras[0].id: 'cam 1' may hold only letters",
        // The camera's lines, one of them unreadable, are left out of the semantic checks; the
        // rest of the file is not.
        "cameras[1].source: file /no/such/clip.mp4 does not exist",
    ];
    assert_listed(&errors, &expect);
    let fixed = text.replace("p1 = [1.5, \"x\"]", "p1 = [1.5, 0.2]");
    let errors = errors_of(&fixed);
    assert!(errors.iter().any(|e| e.starts_with("cameras[0].lines[0].p1: x must be within 0..1")), "{errors:#?}");
    assert!(errors.iter().any(|e| e.starts_with("cameras[1].source: file /no/such/clip.mp4 does not exist")), "{errors:#?}");
    assert_eq!(errors.len(), 8, "{errors:#?}");
}

/// A required key of the wrong type gets a placeholder, so the rest of its camera, and the
/// cameras after it, are still checked; the placeholder itself raises nothing.
#[test]
fn a_required_key_of_the_wrong_type_does_not_hide_the_rest() {
    let text = r#"
site = "hue"
[[cameras]]
id = 7
source = 42
analytics_fps = 500
[[cameras]]
id = "cam2"
source = "/no/such/clip.mp4"
colour = "red"
"#;
    let errors = errors_of(text);
    let expect = [
        "cameras[0].id: invalid type: integer `7`, expected a string (line 4)",
        "cameras[0].source: invalid type: integer `42`, expected a string (line 5)",
        "cameras[1].colour: unknown field `colour`",
        "cameras[0].analytics_fps:",
        "cameras[1].source: file /no/such/clip.mp4 does not exist",
    ];
    assert_listed(&errors, &expect);
}

#[test]
fn parse_errors_never_quote_the_password_line() {
    let text = GOOD.replace("/sub\"", "/sub");
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1);
    assert!(!errors[0].contains("hunter2"), "{errors:?}");
}

/// A still scene looked at less often than a stop is kept unseen (or a queue, for its rule's
/// `clear_s`) would never raise a dwell or congestion rule; on a camera without one, a long
/// recheck is the installer's choice.
#[test]
fn a_recheck_longer_than_a_stop_is_kept_unseen_is_refused_where_a_dwell_rule_needs_it() {
    let motion = |recheck_s: f32| format!("[cameras.motion]\nrecheck_s = {recheck_s:?}\n");
    let parking = "[[cameras.rules]]\nid = \"kerb\"\n[cameras.rules.no_parking]\nzone = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]]\ndwell_s = 60\n";
    let queue = "[[cameras.rules]]\nid = \"queue\"\n[cameras.rules.congestion]\nzone = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4]]\nmax_vehicles = 3\nclear_s = 3\n";
    let with = |recheck_s: f32, rules: &str| GOOD.replace("[[cameras.lines]]", &format!("{}[[cameras.lines]]", motion(recheck_s))) + rules;
    assert_listed(&errors_of(&with(12.0, parking)), &["cameras[0].motion.recheck_s: must be at most 5 s on this camera"]);
    assert_eq!(errors_of(&with(5.0, parking)), Vec::<String>::new());
    assert_eq!(errors_of(&with(12.0, "")), Vec::<String>::new());
    assert_listed(&errors_of(&with(4.0, &format!("{parking}{queue}"))), &["cameras[0].motion.recheck_s: must be at most 3 s on this camera"]);
    assert_eq!(errors_of(&with(3.0, queue)), Vec::<String>::new());
}
