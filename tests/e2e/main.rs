//! End-to-end scenarios against the real testbed (Docker Engine, Swarm, TLS registry).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Blue-green Compose environments behind a real Nginx: checks on the idle colour, the
// switch, rollback by switching back, the rollback window.
mod blue_green;
// `release build` and `release push`: digests recorded exactly, versions immutable.
mod build_push;
// `release build` with BuildKit: multi-stage, secrets, cache mounts, registry cache, errors.
mod buildkit;
// `release check`: smoke and health checks, JUnit for Jenkins, the `checked` record.
mod check;
// `release deploy` on Compose environments: pinned, recorded, judged, rolled back.
mod compose;
// `release deploy` and `release rollback` on the real Swarm: converge, roll back, records.
mod deploy;
// Signed evidence in the registry: check attaches it, the gate and auditors read it.
mod evidence;
// Faults of the real topology during a promotion: node killed or drained, link cut, manager restarted.
mod faults;
// `release image digest|copy`: registry plumbing, digest-exact and resilient to faults.
mod image;
// The signed ledger head: edits and truncations caught without an archived head.
mod ledger_signing;
// `release promote` and `release audit`: the gate, refusals, drift.
mod promote;
// OCI 1.1 referrers through the library: pushed, listed by the tag schema, fetched, copied.
mod referrers;
// Security review: secrets in every channel, child argv/env, permissions, TLS.
mod security;
// `release status`: live Swarm state against the config, digest pinning flagged.
mod status;
// The bearer-token flow against the token-auth registry: scopes, caching, mounts, refusals.
mod token;
// DEV and a 3-node PROD on separate servers, reached over mutual TLS and SSH.
mod topology;
// The testbed script itself: idempotent, leaves a running daemon alone.
mod testbed;
