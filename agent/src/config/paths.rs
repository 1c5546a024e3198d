//! Where the agent finds its installed resources (models, pipeline templates), and how sources are
//! shown without their credentials.

use std::path::{Path, PathBuf};

use crate::detect::{ManifestError, ModelManifest};
use crate::source::{PipelineTemplate, TemplateError};

/// The folders holding model manifests and pipeline templates.
#[derive(Debug, Clone)]
pub struct Resources {
    pub models_dir: PathBuf,
    pub pipelines_dir: PathBuf,
}

impl Resources {
    /// `CANH_MODELS_DIR` / `CANH_PIPELINES_DIR` when set; else `<prefix>/share/canh/…` beside an
    /// installed binary; else the folders of the source tree the binary was built from.
    pub fn locate() -> Resources {
        let installed = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent()?.parent().map(|prefix| prefix.join("share/canh")));
        let source_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let pick = |var: &str, sub: &str| -> PathBuf {
            if let Some(dir) = std::env::var_os(var) {
                return PathBuf::from(dir);
            }
            match &installed {
                Some(share) if share.join(sub).is_dir() => share.join(sub),
                _ => source_tree.join(sub),
            }
        };
        Resources { models_dir: pick("CANH_MODELS_DIR", "models"), pipelines_dir: pick("CANH_PIPELINES_DIR", "pipelines") }
    }

    pub fn model(&self, name: &str) -> Result<ModelManifest, ManifestError> {
        ModelManifest::load(&self.models_dir.join(name).join("manifest.toml"))
    }

    pub fn pipeline(&self, name: &str) -> Result<PipelineTemplate, TemplateError> {
        PipelineTemplate::load(&self.pipelines_dir, name)
    }
}

/// The URL with its password replaced by `***`, for logs, errors and status messages.
/// Strings that are not URLs (file paths) are returned unchanged.
pub fn redact_url(source: &str) -> String {
    match url::Url::parse(source) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_rtsp_password_only() {
        assert_eq!(redact_url("rtsp://admin:s3cret@10.0.0.5:554/sub"), "rtsp://admin:***@10.0.0.5:554/sub");
        assert_eq!(redact_url("rtsp://10.0.0.5/sub"), "rtsp://10.0.0.5/sub");
        assert_eq!(redact_url("/var/clips/a.mp4"), "/var/clips/a.mp4");
    }
}
