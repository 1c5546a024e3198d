//! `[detector]`: how the site's models share the cores, and where ONNX Runtime is.

use std::path::PathBuf;

use serde::Deserialize;

use crate::check::ConfigError;

/// `[detector]` in the site config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Frames analysed at once, each on its own ONNX Runtime session. 0 = one per CPU core, at
    /// most one per camera.
    #[serde(default)]
    pub parallel_frames: usize,
    /// ONNX Runtime threads per inference (intra-op). 0 = the cores shared out among the
    /// frames analysed at once.
    #[serde(default)]
    pub threads: usize,
    /// Path of `libonnxruntime.so`. Default: `$ORT_DYLIB_PATH`, then `<prefix>/lib/canh/`
    /// beside an installed binary, then `.ort/` of the source tree.
    pub onnxruntime_lib: Option<PathBuf>,
}

/// How a model's work is spread over the cores: `sessions` frames at once, each inference on
/// `threads` threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes {
    pub sessions: usize,
    pub threads: usize,
}

impl DetectorConfig {
    /// The lanes for a site of `cameras` cameras. Several single-threaded inferences side by side
    /// beat one inference spread over the cores once decoders share those cores: a parallel
    /// operator waits for its slowest thread, and a thread that a decoder preempts holds up the
    /// whole operator (measured on 2 cores with two decoders busy: 29 ms per frame on one
    /// thread, 49 ms on two).
    pub fn lanes(&self, cameras: usize) -> Lanes {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let sessions = if self.parallel_frames == 0 { cores.min(cameras).max(1) } else { self.parallel_frames };
        let threads = if self.threads == 0 { (cores / sessions).max(1) } else { self.threads };
        Lanes { sessions, threads }
    }

    /// `cameras`: how many cameras the site has. Each frame analysed at once loads every model
    /// once more, and a camera's frames are analysed one after the other: more than one a
    /// camera would only cost memory.
    pub fn validate(&self, path: &str, cameras: usize, errors: &mut Vec<ConfigError>) {
        if self.parallel_frames > cameras.max(1) {
            errors.push(ConfigError::new(format!("{path}.parallel_frames"), format!("must not exceed the number of cameras ({}), got {}", cameras.max(1), self.parallel_frames)));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.threads > 4 * cores {
            errors.push(ConfigError::new(format!("{path}.threads"), format!("must not exceed 4 threads a core ({}), got {}", 4 * cores, self.threads)));
        }
        if let Some(lib) = &self.onnxruntime_lib
            && !lib.is_file()
        {
            errors.push(ConfigError::new(format!("{path}.onnxruntime_lib"), format!("{} is not a file", lib.display())));
        }
    }
}
