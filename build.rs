//! Build script: records the git revision for the `kafka_pipeline_build_info` metric.
//! `KAFKA_PIPELINE_REVISION` in the build environment wins (for builds without `.git`, such as
//! a container build); without either the revision is `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=KAFKA_PIPELINE_REVISION");
    if std::env::var_os("KAFKA_PIPELINE_REVISION").is_some() {
        return;
    }
    let Some(revision) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return;
    };
    println!("cargo:rustc-env=KAFKA_PIPELINE_REVISION={revision}");
    // Run again when HEAD moves: a checkout changes HEAD, a commit the branch's ref.
    let branch_ref = git(&["rev-parse", "--symbolic-full-name", "HEAD"]);
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    if let Some(r) = branch_ref.filter(|r| r.starts_with("refs/")) {
        watched.push(git(&["rev-parse", "--git-path", &r]));
    }
    for path in watched.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
