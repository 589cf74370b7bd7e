//! # frond-manifest — the system manifest's format
//!
//! The manifest (`domains/system.manifest`) says which domains Frond starts, from which
//! image, under which name, wired to which earlier entries, when (a condition on the
//! kernel command line) and what happens when they die; the kernel's assembly
//! (`kernel/src/assembly.rs`) reads it at boot. This crate is the parser alone, so it is
//! tested on the host.
//!
//! ```text
//! domain NAME kind=KIND image=IMAGE [KEY=VALUE...] [when=COND] [restart=on-call|always|never]
//! nic PREFIX image=IMAGE pci=VENDOR:DEVICE[,...] [when=COND]
//! ```
//!
//! A name may appear on several lines only as alternatives: every such line has a `when=`,
//! each a different one (the kernel starts at most one entry of a name).
//!
//! `#` starts a comment. Errors name the line; nothing in a manifest can make the parser
//! panic, and its size is bounded ([`MAX_LINES`] lines of at most [`MAX_FIELDS`] fields).
//!
//! May depend on: `alloc` only. `#![no_std]`, `#![forbid(unsafe_code)]`.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Lines at most (a manifest is a few dozen).
pub const MAX_LINES: usize = 256;
/// `key=value` fields per line at most.
pub const MAX_FIELDS: usize = 16;
/// Longest entry name.
pub const MAX_NAME: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    OnCall,
    Always,
    Never,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    Domain,
    Nic,
}

/// One manifest line.
#[derive(Clone, Debug)]
pub struct Entry {
    pub line: usize,
    pub what: What,
    pub name: String,
    pub kind: String,
    pub image: String,
    pub params: Vec<(String, String)>,
    pub when: Option<String>,
    pub restart: Restart,
}

impl Entry {
    /// The value of `key=`, if given.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key=`, or an error naming the line.
    pub fn need(&self, key: &str) -> Result<&str, String> {
        self.param(key).ok_or_else(|| format!("manifest line {}: `{}` needs {key}=", self.line, self.name))
    }
}

/// Parses the manifest text. Errors name the line.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if line > MAX_LINES {
            return Err(format!("manifest: more than {MAX_LINES} lines"));
        }
        let l = raw.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        let words: Vec<&str> = l.split_ascii_whitespace().collect();
        if words.len() > MAX_FIELDS + 2 {
            return Err(format!("manifest line {line}: more than {MAX_FIELDS} fields"));
        }
        let what = match words[0] {
            "domain" => What::Domain,
            "nic" => What::Nic,
            w => return Err(format!("manifest line {line}: `{w}`: expected `domain` or `nic`")),
        };
        let name = *words.get(1).ok_or_else(|| format!("manifest line {line}: no name"))?;
        if name.contains('=') || name.len() > MAX_NAME {
            return Err(format!("manifest line {line}: `{name}` is not a name"));
        }
        let mut e = Entry {
            line,
            kind: if what == What::Nic { "nic".to_string() } else { String::new() },
            what,
            name: name.to_string(),
            image: String::new(),
            params: Vec::new(),
            when: None,
            restart: Restart::OnCall,
        };
        for w in &words[2..] {
            let (k, v) = w.split_once('=').ok_or_else(|| format!("manifest line {line}: `{w}`: expected key=value"))?;
            match k {
                "kind" if e.what == What::Domain => e.kind = v.to_string(),
                "kind" => return Err(format!("manifest line {line}: a `nic` line has no kind= (its kind is nic)")),
                "image" => e.image = v.to_string(),
                "when" => e.when = Some(v.to_string()),
                "restart" => {
                    e.restart = match v {
                        "on-call" => Restart::OnCall,
                        "always" => Restart::Always,
                        "never" => Restart::Never,
                        _ => return Err(format!("manifest line {line}: restart={v}: expected on-call, always or never")),
                    }
                }
                _ => e.params.push((k.to_string(), v.to_string())),
            }
        }
        if e.kind.is_empty() || e.image.is_empty() {
            return Err(format!("manifest line {line}: `{name}` needs kind= and image="));
        }
        // A name may come back on another line as an alternative: both lines conditional,
        // on different conditions (e.g. the forwarder wired per `net=` mode). The kernel
        // starts at most one entry of a name.
        if let Some(o) = out.iter().find(|o: &&Entry| o.name == e.name) {
            if o.when.is_none() || e.when.is_none() || o.when == e.when {
                return Err(format!("manifest line {line}: `{name}` is listed twice"));
            }
        }
        out.push(e);
    }
    Ok(out)
}


#[cfg(test)]
mod tests;
