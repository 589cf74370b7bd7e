//! The hostile-domain suite: each test boots the kernel with `test=hostile_*`, which runs
//! one attack of `domains/hostile` (safe Rust only) next to a bystander domain, and
//! checks what it reports. The kernel side (`kernel/src/ktest_hostile.rs`) asserts the
//! attacker's fate, the bystander's calls and that every counter returned exactly; here
//! the host re-checks the figures, so a test that printed nothing cannot pass.
//!
//! The kernel tests listed here are part of `DRIVEN_KTESTS` in `kernel.rs`.

use frond_tests::{run_ktest, Outcome};

/// Codes the kernel test prints for an `RpcResult`.
const PANICKED: i64 = 1;
const DEAD: i64 = 3;
const TIMEOUT: i64 = 4;
const REFUSED: i64 = 5;
const STACK_EXHAUSTED: i64 = 6;

/// Runs `hostile_<name>` and checks the parts every attack shares: it passed, the
/// bystander answered throughout with no failure, and the counters came back exactly.
fn attack(name: &str) -> Outcome {
    let out = run_ktest(&format!("hostile_{name}"));
    out.assert_pass();
    assert!(out.metric("bystander.ok") > 0, "the bystander made no call\n{out}");
    assert_eq!(out.metric("bystander.failed"), 0, "a bystander call failed\n{out}");
    for key in ["kernel_heap_used", "frames_free", "shared_used", "shared_blocks", "domain_heaps"] {
        assert_eq!(out.metric(&format!("before.{key}")), out.metric(&format!("after.{key}")), "{key} did not return\n{out}");
    }
    out
}

#[test]
fn deep_recursion_overflows_only_the_attacker() {
    let out = attack("recursion");
    assert_eq!(out.metric("result"), PANICKED, "{out}");
    out.assert_serial_contains("overflowed its stack");
    assert!(!out.serial.contains("EXCEPTION"), "the kernel reported a fatal exception\n{out}");
}

#[test]
fn heap_exhaustion_is_the_attackers_failure() {
    let out = attack("heap_exhaustion");
    assert_eq!(out.metric("result"), PANICKED, "{out}");
    out.assert_serial_contains("memory allocation of");
}

#[test]
fn shared_heap_exhaustion_is_the_attackers_failure() {
    let out = attack("shared_exhaustion");
    assert_eq!(out.metric("result"), PANICKED, "{out}");
    out.assert_serial_contains("shared heap exhausted");
}

#[test]
fn thread_exhaustion_stops_at_the_quota() {
    let out = attack("thread_exhaustion");
    assert_eq!(out.metric("threads_spawned"), 16, "{out}");
}

#[test]
fn spinning_callee_is_ended_by_the_watchdog() {
    let out = attack("spin_in_call");
    assert_eq!(out.metric("result"), TIMEOUT, "{out}");
    assert!(out.metric("ended_after_ms") >= 200, "{out}");
    assert!(out.metric("watchdog_kills") >= 1, "{out}");
    out.assert_serial_contains("watchdog: domain `hostile`");
}

/// A spinning call on a thread that gets no CPU (a Normal-priority thread keeps it busy)
/// is ended by its runnable-time bound (400 ms), long before its CPU bound (5 s) could
/// be reached; a call sleeping past the runnable bound returns normally.
#[test]
fn starved_spinning_callee_is_ended_by_the_runnable_bound() {
    let out = attack("spin_starved");
    assert_eq!(out.metric("sleeper_result"), 0, "{out}");
    assert!(out.metric("sleeper_ms") >= 800, "{out}");
    assert_eq!(out.metric("result"), TIMEOUT, "{out}");
    // Guest milliseconds from the call's start: at least the bound, and well under the
    // CPU bound (the scan runs every 100 ms; the rest is margin for a loaded host).
    let ms = out.metric("ended_after_ms");
    assert!((400..3000).contains(&ms), "ended after {ms} ms\n{out}");
    out.assert_serial_contains("watchdog: domain `hostile`");
    out.assert_serial_contains("ran a call past its runnable-time bound: 400 ms running or ready to run; killed");
    assert!(!out.serial.contains("past its CPU bound"), "the CPU bound ended it\n{out}");
}

#[test]
fn spinning_lock_holder_does_not_starve_waiters_or_others() {
    let out = attack("spin_holding_lock");
    assert_eq!(out.metric("spinner_result"), TIMEOUT, "{out}");
    assert_eq!(out.metric("waiter_result"), TIMEOUT, "{out}");
}

#[test]
fn spinning_domain_thread_keeps_only_its_level_busy() {
    let out = attack("spinning_thread");
    assert!(out.metric("high_worst_late_us") < 20_000, "{out}");
}

#[test]
fn stealing_a_lent_rref_kills_the_thief_and_keeps_the_callers_block() {
    let out = attack("steal_lent");
    assert_eq!(out.metric("result"), REFUSED, "{out}");
    assert_eq!(out.metric("same_block"), 1, "{out}");
}

#[test]
fn returning_the_callers_own_lent_block_is_refused() {
    let out = attack("return_lent");
    assert_eq!(out.metric("result"), REFUSED, "{out}");
}

#[test]
fn kernel_services_bound_hostile_arguments() {
    let out = attack("sys_abuse");
    assert_eq!(out.metric("irq_fired"), 0, "{out}");
    assert!(out.metric("sys_abuse_ms") < 1000, "{out}");
    assert!(out.metric("longest_thread_name") <= 32, "{out}");
}

#[test]
fn calling_a_dead_domain_is_an_error_for_the_caller_only() {
    let out = attack("dead_remote");
    assert_eq!(out.metric("after_kill"), DEAD, "{out}");
}

#[test]
fn recursion_across_proxies_ends_in_an_error() {
    let out = attack("pingpong");
    assert_eq!(out.metric("result"), STACK_EXHAUSTED, "{out}");
}

#[test]
fn panicking_drop_is_contained_and_never_run_by_reclamation() {
    let out = attack("drop_bomb");
    assert_eq!(out.metric("drop_result"), PANICKED, "{out}");
    assert_eq!(out.metric("bombs_freed"), 100, "{out}");
    // One per round (the suite runs each attack twice, measuring the second).
    assert_eq!(out.serial.matches("Bomb dropped").count(), 2, "only the bombs dropped in calls went off\n{out}");
}

#[test]
fn a_lenders_death_orphans_its_block_until_the_lend_ends() {
    let out = attack("lender_dies");
    assert_eq!(out.metric("orphaned_at_kill"), 1, "{out}");
    assert_eq!(out.metric("orphans_during_lend"), 1, "{out}");
    assert_eq!(out.metric("orphans_after_lend"), 0, "{out}");
}

#[test]
fn generations_never_repeat_and_racing_callers_wait_for_a_restart() {
    let out = run_ktest("hostile_lifecycle");
    out.assert_pass();
    assert!(out.metric("gen_after_reuse") > out.metric("gen_before_remove"), "{out}");
    assert_eq!(out.metric("racer_failures"), 0, "{out}");
    assert_eq!(out.metric("restarts"), 1, "{out}");
}

#[test]
fn every_cpu_exception_in_domain_code_is_contained() {
    let out = attack("cpu_faults");
    for (vector, name) in [
        (0, "Divide error"),
        (1, "Debug"),
        (3, "Breakpoint"),
        (6, "Invalid opcode"),
        (7, "Device not available"),
        (13, "General protection"),
        (14, "Page fault"),
    ] {
        assert_eq!(out.metric(&format!("vector{vector}")), PANICKED, "vector {vector}\n{out}");
        out.assert_serial_contains(&format!("faulted: {name}"));
    }
    assert!(!out.serial.contains("!!! EXCEPTION"), "a domain fault was fatal\n{out}");
}

#[test]
fn malformed_block_requests_are_refused_and_change_nothing() {
    let out = attack("block_requests");
    assert_eq!(out.metric("refused"), 15, "{out}");
    assert_eq!(out.metric("blk.writes"), 1, "{out}");
}

#[test]
fn malformed_file_system_requests_are_refused_and_change_nothing() {
    let out = attack("fs_requests");
    assert_eq!(out.metric("refused"), 35, "{out}");
}
