//! Where the agent finds its installed resources (models and pipeline templates) and the
//! credentials systemd hands the service.

use std::path::{Path, PathBuf};

use crate::detect::{ManifestError, ModelManifest};
use crate::source::{PipelineTemplate, TemplateError};

/// The folders holding model manifests, pipeline templates and credentials.
#[derive(Debug, Clone)]
pub struct Resources {
    pub models_dir: PathBuf,
    pub pipelines_dir: PathBuf,
    /// What `$CREDENTIALS_DIRECTORY` in a site file stands for: systemd's folder of the
    /// service's `LoadCredential=` files, or the folder given to `canh check --credentials`.
    pub credentials_dir: Option<PathBuf>,
}

impl Resources {
    /// `CANH_MODELS_DIR` / `CANH_PIPELINES_DIR` when set; else `<prefix>/share/canh/…` beside an
    /// installed binary; else the folders of the source tree the binary was built from. The
    /// credentials from `CREDENTIALS_DIRECTORY`, which systemd sets for the service.
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
        Resources {
            models_dir: pick("CANH_MODELS_DIR", "models"),
            pipelines_dir: pick("CANH_PIPELINES_DIR", "pipelines"),
            credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        }
    }

    pub fn model(&self, name: &str) -> Result<ModelManifest, ManifestError> {
        ModelManifest::load(&self.models_dir.join(name).join("manifest.toml"))
    }

    pub fn pipeline(&self, name: &str) -> Result<PipelineTemplate, TemplateError> {
        PipelineTemplate::load(&self.pipelines_dir, name)
    }
}
