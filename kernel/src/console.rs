//! The kernel console on the serial port: a line editor and a table of commands.
//!
//! Commands are rows of [`COMMANDS`]. Input arrives through the UART interrupt (see `serial`), so the console thread
//! sleeps while nobody types.

use crate::mem::{frame, heap};
use crate::sched;
use crate::{print, println};
use alloc::string::String;

pub const PROMPT: &str = "frond> ";
const MAX_LINE: usize = 256;

struct Command {
    name: &'static str,
    help: &'static str,
    run: fn(args: &str),
}

const COMMANDS: &[Command] = &[
    Command { name: "help", help: "list commands", run: cmd_help },
    Command { name: "threads", help: "list threads: id, name, priority, state, cpu time, switches", run: cmd_threads },
    Command { name: "mem", help: "physical frames, kernel heap and stacks", run: cmd_mem },
    Command { name: "uptime", help: "time since boot, timer ticks, context switches", run: cmd_uptime },
    Command {
        name: "domains",
        help: "list domains: id, name, generation, state, heap, RRefs owned, calls, crashes",
        run: cmd_domains,
    },
    Command { name: "crash", help: "crash <domain>: kill a domain as if it had faulted", run: cmd_crash },
    Command { name: "restart", help: "restart <domain>: reload a domain from its pristine image", run: cmd_restart },
    Command { name: "lspci", help: "PCI functions: address, ids, class, BARs (* = placed by the kernel), driver", run: cmd_lspci },
    Command { name: "net", help: "NIC, stack and forwarding counters", run: |_| crate::net::print_status() },
    Command { name: "ls", help: "ls [PATH]: list a directory (type, inode, links, size, name)", run: crate::storage::cmd_ls },
    Command { name: "cat", help: "cat PATH: print a file", run: crate::storage::cmd_cat },
    Command { name: "df", help: "file system and block device: format, free blocks and inodes, driver counters", run: crate::storage::cmd_df },
    Command { name: "write", help: "write PATH TEXT: create or replace a file holding TEXT", run: crate::storage::cmd_write },
    Command { name: "mkdir", help: "mkdir PATH: make a directory", run: crate::storage::cmd_mkdir },
    Command { name: "rm", help: "rm PATH: remove a file or an empty directory", run: crate::storage::cmd_rm },
    Command { name: "sync", help: "make every completed file-system operation durable", run: crate::storage::cmd_sync },
    Command { name: "inject", help: "fault injector totals per domain and kind (boot with inject=SEED)", run: crate::inject::cmd },
    Command { name: "quit", help: "stop the machine (QEMU exits with status 33)", run: cmd_quit },
];

pub fn run() -> ! {
    if crate::rv6::console_wanted() {
        rv6_lines();
    }
    crate::assembly::wait_done(20_000);
    println!("Frond console ready in {} ms. Type 'help'.", crate::time::uptime_us() / 1000);
    let mut line = String::new();
    loop {
        print!("{PROMPT}");
        line.clear();
        read_line(&mut line);
        run_command(line.trim());
    }
}

/// Runs one monitor command line (output to the console).
pub fn run_command(line: &str) {
    if line.is_empty() {
        return;
    }
    let (name, args) = line.split_once(' ').unwrap_or((line, ""));
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(c) => (c.run)(args.trim()),
        None => println!("unknown command '{name}'; try 'help'"),
    }
}

/// While rv6 has the console: edits lines (echo, backspace, Ctrl-U, Ctrl-D) and hands
/// each finished line to rv6's input queue. Returns when rv6 gives the console back
/// (it could not start).
fn rv6_lines() {
    let mut line = alloc::vec::Vec::new();
    while crate::rv6::console_wanted() {
        let b = crate::serial::read_byte();
        match b {
            b'\r' | b'\n' => {
                println!();
                line.push(b'\n');
                crate::rv6::input(&line, false);
                line.clear();
            }
            0x04 => {
                // Ctrl-D: end of input on an empty line, else hand over what is there.
                crate::rv6::input(&line, line.is_empty());
                line.clear();
            }
            0x15 => {
                for _ in 0..line.len() {
                    print!("\x08 \x08");
                }
                line.clear();
            }
            0x08 | 0x7f if line.pop().is_some() => print!("\x08 \x08"),
            0x20..=0x7e | b'\t' if line.len() < MAX_LINE => {
                line.push(b);
                print!("{}", b as char);
            }
            _ => {}
        }
    }
}

fn read_line(line: &mut String) {
    loop {
        let b = crate::serial::read_byte();
        match b {
            b'\r' | b'\n' => {
                println!();
                return;
            }
            0x08 | 0x7f if line.pop().is_some() => print!("\x08 \x08"),
            0x20..=0x7e if line.len() < MAX_LINE => {
                line.push(b as char);
                print!("{}", b as char);
            }
            _ => {}
        }
    }
}

fn cmd_help(_: &str) {
    for c in COMMANDS {
        println!("  {:<10} {}", c.name, c.help);
    }
}

fn cmd_threads(_: &str) {
    println!("  {:>4}  {:<16} {:<7} {:<9} {:>9} {:>9} {:>6}", "id", "name", "prio", "state", "cpu ms", "switches", "stack");
    for t in sched::threads() {
        println!(
            "  {:>4}  {:<16} {:<7} {:<9} {:>9} {:>9} {:>5}K",
            t.id,
            t.name,
            if t.id == 0 { String::from("-") } else { alloc::format!("{:?}", t.prio) },
            alloc::format!("{:?}", t.state),
            t.cpu_ms,
            t.switches,
            t.stack_kib
        );
    }
}

fn cmd_mem(_: &str) {
    let f = frame::stats();
    let h = heap::stats();
    println!("  frames: {} total, {} free ({} KiB free of {} KiB)", f.total, f.free, f.free * 4, f.total * 4);
    println!("  heap:   {} KiB, {} bytes used, {} KiB free", h.size / 1024, h.used, h.free / 1024);
    let threads = sched::threads();
    let stack_kib: usize = threads.iter().map(|t| t.stack_kib).sum();
    println!("  stacks: {} threads, {} KiB (each with an unmapped guard page)", threads.len(), stack_kib);
    println!("  serial: {} input bytes dropped (ring full)", crate::serial::rx_dropped());
}

fn cmd_uptime(_: &str) {
    let us = crate::time::uptime_us();
    let s = sched::stats();
    println!(
        "  up {}.{:03} s, {} ticks, {} context switches, {} serial interrupts, TSC {} MHz",
        us / 1_000_000,
        (us / 1000) % 1000,
        s.ticks,
        s.switches,
        crate::serial::rx_interrupts(),
        crate::time::tsc_hz() / 1_000_000
    );
}

fn cmd_domains(_: &str) {
    println!(
        "  {:>3}  {:<10} {:>4} {:<10} {:>6} {:>9} {:>7} {:>7} {:>9} {:>9} {:>7} {:>8}",
        "id", "name", "gen", "state", "image", "heap used", "heap", "RRefs", "RRef B", "calls", "crashes", "restarts"
    );
    for d in crate::domain::list() {
        println!(
            "  {:>3}  {:<10} {:>4} {:<10} {:>5}K {:>9} {:>6}K {:>7} {:>9} {:>9} {:>7} {:>8}",
            d.id,
            d.name,
            d.generation,
            alloc::format!("{:?}", d.state),
            d.image_kib,
            d.heap_used,
            d.heap_reserved / 1024,
            d.rrefs,
            d.rref_bytes,
            d.calls,
            d.crashes,
            d.restarts
        );
    }
    // Usage/limit of every quota, and the call watchdog's budget (`limit=` on the
    // command line sets them; see `domain::limits`).
    for d in crate::domain::list() {
        let l = d.limits;
        println!(
            "  quota {:>3} {:<10} heap {}/{}K shared {}/{}K threads {}/{} frames {}/{} budget {}ms wall {}ms",
            d.id,
            d.name,
            d.heap_reserved / 1024,
            l.heap / 1024,
            d.rref_bytes / 1024,
            l.shared / 1024,
            d.threads,
            l.threads,
            d.frames,
            l.frames,
            l.budget_ns / 1_000_000,
            l.wall() / 1_000_000
        );
    }
    let c = crate::domain::shared::SHARED.counters();
    println!(
        "  kernel: {} RRefs ({} B); shared heap {} B used of {} KiB; domain heaps reserve {} KiB",
        c.blocks(rref::DomainId::KERNEL),
        c.bytes(rref::DomainId::KERNEL),
        crate::domain::shared::SHARED.used(),
        crate::domain::shared::SHARED.size() / 1024,
        crate::domain::dheap::total_reserved() / 1024
    );
}

fn domain_arg(args: &str) -> Option<rref::DomainId> {
    if args.is_empty() {
        println!("which domain? (name or id; see 'domains')");
        return None;
    }
    let d = crate::domain::lookup(args);
    if d.is_none() {
        println!("no domain '{args}'");
    }
    d
}

fn cmd_crash(args: &str) {
    let Some(d) = domain_arg(args) else { return };
    match crate::domain::kill(d) {
        Ok(r) if r.deferred => println!(
            "domain {} killed: {} sleeping threads woken to unwind; {} devices quiesced; its memory is reclaimed when the threads inside it have left",
            d.0, r.woken, r.devices
        ),
        Ok(r) => println!(
            "domain {} killed: reclaimed {} RRefs ({} B), {} KiB of heap; {} sleeping threads woken to unwind; {} devices quiesced",
            d.0,
            r.rref_blocks,
            r.rref_bytes,
            r.heap_bytes / 1024,
            r.woken,
            r.devices
        ),
        Err(e) => println!("crash {args}: {e}"),
    }
}

fn cmd_restart(args: &str) {
    let Some(d) = domain_arg(args) else { return };
    let t0 = crate::time::rdtsc();
    match crate::domain::restart(d) {
        Ok(generation) => println!(
            "domain {} restarted: generation {generation}, in {} us",
            d.0,
            crate::time::tsc_to_ns(crate::time::rdtsc() - t0) / 1000
        ),
        Err(e) => println!("restart {args}: {e}"),
    }
}

fn cmd_quit(_: &str) {
    println!("bye");
    crate::arch::qemu::exit(crate::arch::qemu::ExitCode::Pass);
}

fn cmd_lspci(_: &str) {
    for f in crate::pci::functions() {
        let mut bars = String::new();
        for (i, &(a, s)) in f.bars.iter().enumerate() {
            if s == 0 {
                continue;
            }
            let io = a & crate::pci::IO_FLAG != 0;
            let star = if f.assigned[i] { "*" } else { "" };
            bars += &alloc::format!(" bar{i}={}{:#x}+{:#x}{star}", if io { "io:" } else { "" }, a & !crate::pci::IO_FLAG, s);
        }
        let owner = if f.owner != 0 { alloc::format!(" driver={}", crate::domain::name_of(f.owner as usize)) } else { String::new() };
        let irq = if f.vector != 0 { alloc::format!(" msix={:#x} ({} irqs)", f.vector, crate::pci::fired(f.vector)) } else { String::new() };
        println!("  {} {:04x}:{:04x} class {:06x}{bars}{owner}{irq}", f.slot_name(), f.vendor, f.device, f.class);
    }
}
