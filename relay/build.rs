//! Build script: chooses what the binary embeds as its dashboard (`assets.rs`): the Next.js export in
//! `www/out` when it has been built (`scripts/build-dashboard.sh`), else nothing, in which case the relay serves
//! a page saying how to build it. Never fails for a missing export: `cargo run` works on a fresh clone.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let www = manifest.join("..").join("www");
    let export = www.join("out");

    let embedded = if export.join("index.html").is_file() {
        // Any change in the export (a rebuild, precompressed files) re-embeds it.
        println!("cargo:rerun-if-changed={}", export.display());
        export
    } else {
        // Watching the missing `www/out` itself would make cargo rerun this script, and so rebuild the relay, on
        // every build; its nearest existing parent notices the export appearing.
        match [&www, &manifest].into_iter().find(|p| p.is_dir()) {
            Some(parent) => println!("cargo:rerun-if-changed={}", parent.display()),
            None => println!("cargo:rerun-if-changed=build.rs"),
        }
        println!(
            "cargo:warning=built without the dashboard ({} is missing): its page will say how to build it \
             (scripts/build-dashboard.sh, then build again)",
            export.display()
        );
        let empty = out_dir.join("no-dashboard");
        fs::create_dir_all(&empty).expect("creating an empty dashboard directory in OUT_DIR");
        empty
    };
    // Read by `include_dir!` in assets.rs. (Cargo also sets it for `cargo run` / `cargo test` processes, so it must
    // not be a name the relay reads at run time, such as DEVRELAY_DASHBOARD_DIR.)
    println!("cargo:rustc-env=DEVRELAY_EMBED_DIR={}", embedded.display());
}
