//! The installer and the units, for real: `systemd/install.sh` into a staging root (DESTDIR),
//! the installed program run from there with nothing pointing it at the source tree,
//! `systemd-analyze verify` and `security` on the installed units, and uninstalling.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?}: {}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    output
}

fn installer(stage: &Path, args: &[&str]) -> Output {
    run(Command::new("bash").arg(repo_root().join("systemd/install.sh")).args(args).env("DESTDIR", stage))
}

/// The installed program, with nothing in its environment pointing at the source tree.
fn installed_canh(stage: &Path) -> Command {
    let mut command = Command::new(stage.join("usr/local/bin/canh"));
    command.env_remove("ORT_DYLIB_PATH").env_remove("CANH_MODELS_DIR").env_remove("CANH_PIPELINES_DIR").env("CANH_LOG", "warn");
    command
}

#[test]
fn installs_runs_from_the_installed_layout_verifies_and_uninstalls() {
    let stage = temp_dir("install");
    installer(&stage, &[]);
    for file in ["usr/local/bin/canh", "usr/local/lib/canh/libonnxruntime.so", "usr/local/share/canh/models/yolox_nano/manifest.toml", "usr/local/share/canh/pipelines/software.pipeline", "etc/canh/site.toml", "etc/systemd/system/canh.service", "etc/systemd/system/canh@.service", "usr/local/share/doc/canh/README.md"] {
        assert!(stage.join(file).exists(), "{file} not installed");
    }

    // The broker's password is a credential the unit hands the service, not a line of the site
    // file: only root reads it.
    use std::os::unix::fs::PermissionsExt;
    let password = stage.join("etc/canh/mqtt-password");
    assert_eq!(std::fs::metadata(&password).unwrap().permissions().mode() & 0o777, 0o600);
    let site = std::fs::read_to_string(stage.join("etc/canh/site.toml")).unwrap();
    assert!(site.contains("password_file = \"$CREDENTIALS_DIRECTORY/mqtt-password\"") && !site.contains("\npassword ="), "{site}");
    let unit = |name: &str| std::fs::read_to_string(stage.join("etc/systemd/system").join(name)).unwrap();
    assert!(unit("canh.service").contains("\nLoadCredential=mqtt-password:/etc/canh/mqtt-password\n"));
    assert!(unit("canh@.service").contains("\nLoadCredential=mqtt-password:/etc/canh/%i/mqtt-password\n"));
    // The service's throwaway user reads the site file.
    assert_eq!(std::fs::metadata(stage.join("etc/canh/site.toml")).unwrap().permissions().mode() & 0o777, 0o644);

    // The installed program finds its models, pipelines and ONNX Runtime beside itself, and
    // checks the installed site file with its credential as the README's install steps say,
    // warning that the password is still the placeholder; without the credentials' folder the
    // file is still good, and the warning says how to check the credential too.
    let site_file = stage.join("etc/canh/site.toml");
    let check = run(installed_canh(&stage).args(["check", "--config", site_file.to_str().unwrap(), "--credentials", stage.join("etc/canh").to_str().unwrap()]));
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(said.contains(": ok") && said.contains("warning: mqtt: the password is still the installer's placeholder"), "{said}");
    std::fs::write(&password, "s3cret\n").unwrap();
    let check = run(installed_canh(&stage).args(["check", "--config", site_file.to_str().unwrap(), "--credentials", stage.join("etc/canh").to_str().unwrap()]));
    assert!(!String::from_utf8_lossy(&check.stdout).contains("warning"), "{}", String::from_utf8_lossy(&check.stdout));
    let unresolved = run(installed_canh(&stage).env_remove("CREDENTIALS_DIRECTORY").args(["check", "--config", site_file.to_str().unwrap()]));
    let said = String::from_utf8_lossy(&unresolved.stdout);
    assert!(said.contains(": ok") && said.contains("warning: mqtt.password_file names $CREDENTIALS_DIRECTORY") && said.contains("--credentials DIR"), "{said}");
    let clip = sample("opencv4nodejs_traffic.mp4");
    let replay = run(installed_canh(&stage).args(["replay", "--input", clip.to_str().unwrap(), "--line", "0.5,1,0.5,0", "--fps", "2"]));
    let summary = String::from_utf8_lossy(&replay.stdout).lines().last().unwrap_or_default().to_string();
    assert!(summary.contains("\"frames\":") && summary.contains("\"car\""), "{summary}");

    // The units verify, with the program where the installer put it.
    let units = temp_dir("install-units");
    let binary = stage.join("usr/local/bin/canh");
    for unit in ["canh.service", "canh@.service"] {
        let text = std::fs::read_to_string(stage.join("etc/systemd/system").join(unit)).unwrap();
        std::fs::write(units.join(unit), text.replace("/usr/local/bin/canh", binary.to_str().unwrap())).unwrap();
    }
    let verify = run(Command::new("systemd-analyze").args(["verify", "canh.service", "canh@gate.service"]).current_dir(&units));
    let complaints = String::from_utf8_lossy(&verify.stderr).trim().to_string();
    assert!(complaints.is_empty(), "systemd-analyze verify: {complaints}");
    for unit in ["canh.service", "canh@gate.service"] {
        let security = run(Command::new("systemd-analyze").args(["security", "--offline=true", unit]).current_dir(&units));
        let text = String::from_utf8_lossy(&security.stdout);
        let score: f64 = text.lines().find_map(|l| l.split_once(&format!("{unit}: "))).and_then(|(_, r)| r.split_whitespace().next()?.parse().ok()).expect("an exposure score");
        println!("systemd-analyze security {unit}: {score}");
        assert!(score <= 2.5, "exposure {score} for {unit}:\n{text}");
    }

    // Uninstall keeps the site file and state; --purge removes them too.
    installer(&stage, &["--uninstall"]);
    assert!(!stage.join("usr/local/bin/canh").exists() && !stage.join("etc/systemd/system/canh.service").exists());
    assert!(stage.join("etc/canh/site.toml").exists());
    installer(&stage, &["--uninstall", "--purge"]);
    assert!(!stage.join("etc/canh").exists());
}
