//! `release.toml`: `config::Config::parse`, with the example's stack files
//! beside it (copied once into a temp dir) so references to them resolve.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use config::Config;

fn config_path() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/hestino");
        for stack in ["stack.dev.yml", "stack.prod.yml"] {
            let _ = std::fs::copy(example.join(stack), dir.path().join(stack));
        }
        std::fs::create_dir_all(dir.path().join("image")).expect("image dir");
        let path = dir.path().join("release.toml");
        (dir, path)
    })
    .1
}

fuzz_target!(|text: &str| {
    let path = config_path();
    let _ = Config::parse(path, text.to_owned(), None);
    let _ = Config::parse(path, text.to_owned(), Some("127.0.0.1:5443"));
});
