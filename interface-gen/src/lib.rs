//! # frond-interface-gen — the `#[interface]` proc-macro (placeholder)
//!
//! Will generate, for every trait that crosses a domain boundary, the proxy that switches
//! the current domain, moves RRef ownership, and turns a callee's panic into an `RpcError`
//! (section 4 of the architecture brief), plus the `Exchangeable` derive. Filled by the
//! isolation-core issue.
//!
//! May depend on: `proc-macro2`, `syn`, `quote`. Runs on the host only.

#![forbid(unsafe_code)]
