//! The benchmarks' report: after criterion has measured, each comparison is read back from
//! criterion's estimates and printed as a ratio, so one `cargo bench -p files-bench` prints
//! every ratio of one run.
//!
//! The benchmarks themselves are in `benches/peers.rs`; what they measure and how to read them
//! is in `docs/performance.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One measured function: criterion's group and function id.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// What it is, for the report.
    pub label: &'static str,
    /// The criterion group.
    pub group: &'static str,
    /// The function id in the group.
    pub id: &'static str,
}

/// Ours against a peer.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    /// What is compared.
    pub what: &'static str,
    /// The service's way.
    pub ours: Measured,
    /// What a user would reach for instead.
    pub peer: Measured,
    /// When set, what the ratio must show (a "must show" of an issue); the report says whether
    /// it does.
    pub must_show: Option<MustShow>,
}

/// What a comparison must show.
#[derive(Debug, Clone, Copy)]
pub enum MustShow {
    /// The peer costs at least this many times ours.
    AtLeast(f64),
    /// Ours costs at most this many percent more than the peer: the overhead of a wrapper over
    /// the library it wraps.
    OverheadAtMost(f64),
}

impl MustShow {
    /// The verdict on `ratio` (peer time / our time).
    fn verdict(self, ratio: f64) -> String {
        match self {
            Self::AtLeast(at_least) if ratio >= at_least => format!("  [ok: at least {at_least}x]"),
            Self::AtLeast(at_least) => format!("  [BELOW the required {at_least}x]"),
            Self::OverheadAtMost(at_most) => {
                let overhead = (1.0 / ratio - 1.0) * 100.0;
                if overhead <= at_most {
                    format!("  [ok: overhead {overhead:.1}%, at most {at_most}%]")
                } else {
                    format!("  [ABOVE the allowed {at_most}%: overhead {overhead:.1}%]")
                }
            }
        }
    }
}

/// Where the benchmarks write criterion's results: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else the workspace's `target/criterion` (criterion's own
/// order, without its `cargo metadata` call).
#[must_use]
pub fn output_directory() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion")
}

/// The mean time (ns) of one measured function, if it was measured since `since`.
fn mean_ns(dir: &Path, measured: Measured, since: SystemTime) -> Option<f64> {
    let path = dir
        .join(measured.group)
        .join(measured.id)
        .join("new")
        .join("estimates.json");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if modified < since {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
    estimates.get("mean")?.get("point_estimate")?.as_f64()
}

/// A duration in ns, in the unit that reads best.
#[must_use]
pub fn human(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}

/// The report of `comparisons` measured in this run (since `since`): one line each, its ratio
/// peer / ours (above 1: ours is cheaper). Comparisons not measured in this run (a filter, or
/// `--test`) are said to be so.
#[must_use]
pub fn report(dir: &Path, comparisons: &[Comparison], since: SystemTime) -> String {
    let mut out =
        String::from("\n== files-bench: ratios of this run (peer time / our time: above 1, ours is cheaper)\n");
    for comparison in comparisons {
        let ours = mean_ns(dir, comparison.ours, since);
        let peer = mean_ns(dir, comparison.peer, since);
        let line = match (ours, peer) {
            (Some(ours), Some(peer)) if ours > 0.0 => {
                let ratio = peer / ours;
                let verdict = comparison
                    .must_show
                    .map_or_else(String::new, |must_show| must_show.verdict(ratio));
                format!(
                    "{:<34} {:>11} {:<34} vs {:>11} {:<34} ratio {ratio:>7.2}{verdict}",
                    comparison.what,
                    human(ours),
                    comparison.ours.label,
                    human(peer),
                    comparison.peer.label,
                )
            }
            _ => format!("{:<34} not measured in this run", comparison.what),
        };
        let _ = writeln!(out, "{line}");
    }
    out
}
