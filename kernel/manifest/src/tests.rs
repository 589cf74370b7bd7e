extern crate std;

use super::*;
use std::string::ToString;

#[test]
fn the_system_manifest_parses_and_names_built_images() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../domains/system.manifest")).unwrap();
    let entries = parse(&text).unwrap();
    let makefile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Makefile")).unwrap();
    for e in &entries {
        let image = e.image.strip_prefix("domains/").unwrap_or_else(|| panic!("{}: image {} not under domains/", e.name, e.image));
        assert!(makefile.contains(&std::format!(" {image}")), "{}: {image} is not among the Makefile's DOMAINS", e.name);
    }
    for name in ["echo", "client", "virtio-net", "netstack", "services", "forward", "virtio-blk0", "membdev", "fs", "fsload", "rv6"] {
        assert!(entries.iter().any(|e| e.name == name), "{name} is in the manifest");
    }
    let rv6 = entries.iter().find(|e| e.name == "rv6").unwrap();
    assert_eq!((rv6.kind.as_str(), rv6.restart, rv6.param("fs"), rv6.when.as_deref()), ("rv6", Restart::Always, Some("fs"), Some("rv6")));
    let nic = entries.iter().find(|e| e.name == "igb").unwrap();
    assert_eq!((nic.what.clone(), nic.kind.as_str(), nic.param("pci")), (What::Nic, "nic", Some("8086:10c9")));
}

#[test]
fn fields_comments_and_defaults() {
    let e = parse("# comment\n\n  domain a kind=k image=i x=1 # trailing\nnic n image=j pci=1:2 when=net restart=never\n").unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!((e[0].line, e[0].name.as_str(), e[0].kind.as_str(), e[0].image.as_str()), (3, "a", "k", "i"));
    assert_eq!((e[0].param("x"), e[0].param("y"), e[0].restart, e[0].when.clone()), (Some("1"), None, Restart::OnCall, None));
    assert_eq!(e[0].need("y").unwrap_err(), "manifest line 3: `a` needs y=");
    assert_eq!((e[1].what.clone(), e[1].kind.as_str(), e[1].restart, e[1].when.as_deref()), (What::Nic, "nic", Restart::Never, Some("net")));
}

#[test]
fn bad_lines_are_refused_with_their_number() {
    let cases = [
        ("domain a image=i", "line 1: `a` needs kind= and image="),
        ("domain a kind=k", "line 1: `a` needs kind= and image="),
        ("\nservice a kind=k image=i", "line 2: `service`: expected `domain` or `nic`"),
        ("domain", "line 1: no name"),
        ("domain a=b kind=k image=i", "line 1: `a=b` is not a name"),
        ("domain a kind=k image=i oops", "line 1: `oops`: expected key=value"),
        ("domain a kind=k image=i restart=sometimes", "line 1: restart=sometimes: expected on-call, always or never"),
        ("domain a kind=k image=i\ndomain a kind=k image=i", "line 2: `a` is listed twice"),
        ("domain a kind=k image=i when=x\ndomain a kind=k image=i", "line 2: `a` is listed twice"),
        ("domain a kind=k image=i when=x\ndomain a kind=k image=i when=x", "line 2: `a` is listed twice"),
        ("nic n kind=k image=i", "line 1: a `nic` line has no kind="),
        ("nic n pci=1:2", "line 1: `n` needs kind= and image="),
    ];
    for (text, want) in cases {
        let got = parse(text).unwrap_err();
        assert!(got.contains(want), "{text:?}: {got}");
    }
    let long = "domain aaaaaaaaaaaaaaaaaaaaaaaaa kind=k image=i";
    assert!(parse(long).unwrap_err().contains("is not a name"));
    let many = std::format!("domain a kind=k image=i {}", (0..20).map(|i| std::format!("k{i}=v")).collect::<Vec<_>>().join(" "));
    assert!(parse(&many).unwrap_err().contains("more than"));
    let lines = "# x\n".repeat(MAX_LINES + 1);
    assert!(parse(&lines).unwrap_err().contains("more than"));
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x1234_5678_u64;
    let alphabet = b"domainc kndsimage=#\n =,:!restartalwys";
    for _ in 0..20_000 {
        let len = (seed % 120) as usize;
        let mut s = std::string::String::new();
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push(alphabet[(seed % alphabet.len() as u64) as usize] as char);
        }
        let _ = parse(&s);
        let _ = parse(&(s.to_string() + "\u{fffd}\u{0}"));
    }
}

#[test]
fn a_name_may_come_back_as_an_alternative() {
    let e = parse("domain f kind=forward image=i a=0 b=1 when=net=fwd\ndomain f kind=forward image=i a=1 b=2 when=net=both").unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!((e[0].param("a"), e[1].param("a"), e[1].when.as_deref()), (Some("0"), Some("1"), Some("net=both")));
}

#[test]
fn the_system_manifest_has_net_both() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../domains/system.manifest")).unwrap();
    let entries = parse(&text).unwrap();
    let holds = |e: &Entry, mode: &str| e.when.as_deref().and_then(|w| w.strip_prefix("net=")).is_some_and(|vs| vs.split(',').any(|v| v == mode));
    for (name, modes) in [("netstack", ["stack", "both"]), ("services", ["stack", "both"])] {
        let e = entries.iter().find(|e| e.name == name).unwrap();
        assert!(modes.iter().all(|m| holds(e, m)), "{name} starts with net={modes:?}");
    }
    let fwd: std::vec::Vec<&Entry> = entries.iter().filter(|e| e.name == "forward").collect();
    let wiring = |mode: &str| fwd.iter().find(|e| holds(e, mode)).map(|e| (e.param("a"), e.param("b"), e.restart));
    assert_eq!(wiring("fwd"), Some((Some("0"), Some("1"), Restart::Never)), "net=fwd: unchanged");
    assert_eq!(wiring("both"), Some((Some("1"), Some("2"), Restart::Always)), "net=both: NICs 1 and 2, restarted");
    assert_eq!(fwd.iter().filter(|e| holds(e, "stack")).count(), 0);
}
