//! Integration tests for the records layer, on the real filesystem in temp directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Fixtures: state directories, manifests, digests, and the child-process harness.
mod util;

/// Many processes and threads writing records at once.
mod concurrency;
/// Writers killed with SIGKILL at random points.
mod crash;
/// Atomic writes, write-once, permissions and locks.
mod files;
/// Ledger format, strict reads, tamper detection and torn tails.
mod ledger;
/// Version and environment-name validation at the edge.
mod names;
/// Recording release manifests and environment pointers.
mod releases;

/// Not a test of its own: the entry point of the child processes that `concurrency` and
/// `crash` spawn by re-running this binary (see `util::child`). Without the role variable
/// set it returns at once.
#[test]
fn child_process() {
    util::run_child_role();
}
