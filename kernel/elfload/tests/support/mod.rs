//! Test-only builder of a minimal static-pie-like domain image, assembled byte by byte.
//!
//! [`TestImage::valid`] describes a correct image as plain fields; tests mutate fields and
//! call [`TestImage::to_bytes`]. Every part is written at a fixed file offset (the `*_OFF`
//! constants), whatever the header fields say, so a mutated field changes only that field.
//!
//! File layout (vaddr == file offset; `[RX]`/`[RW]` = inside that PT_LOAD):
//!
//! ```text
//! 0x0000 ELF header                          [RX] segment 0: offset 0, vaddr 0, 0x310 bytes
//! 0x0040 program headers (room for 8)        [RX]
//! 0x0200 .rela.dyn (room for 8 entries)      [RX]
//! 0x0300 .text (16 bytes; entry point)       [RX]
//! 0x1000 .dynamic (8 entries, DT_NULL padded) [RW] segment 1: offset/vaddr 0x1000,
//! 0x1080 .data (64 bytes)                     [RW]   file 0xc0 bytes, memory 0x1800 (bss)
//! 0x1100 .frond_abi (152 bytes, not loaded)
//! 0x11a0 .shstrtab (room for 0x60 bytes)
//! 0x1200 section headers
//! ```

#![allow(dead_code)]

use frond_elfload::{AbiRecord, ABI_RECORD_SIZE};

pub const PHDR_OFF: u64 = 0x40;
pub const RELA_OFF: u64 = 0x200;
pub const CODE_OFF: u64 = 0x300;
pub const DATA_SEG_OFF: u64 = 0x1000;
pub const DYN_OFF: u64 = 0x1000;
pub const DYN_CAP: usize = 8;
pub const DATA_OFF: u64 = 0x1080;
pub const ABI_OFF: u64 = 0x1100;
pub const SHSTRTAB_OFF: u64 = 0x11a0;
pub const SHSTRTAB_CAP: u64 = 0x60;
pub const SHDR_OFF: u64 = 0x1200;

pub const RUSTC: &str = "rustc 1.95.0 (59807616e 2026-04-14)";
pub const ENTRY_SIG: &str = "fn(&dyn Syscalls, Heap) -> Box<dyn Domain>";
pub const NAME: &str = "testdom";

pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_INTERP: u32 = 3;
pub const PT_TLS: u32 = 7;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;
pub const DT_NULL: i64 = 0;
pub const DT_RELA: i64 = 7;
pub const DT_RELASZ: i64 = 8;
pub const DT_RELAENT: i64 = 9;
pub const DT_REL: i64 = 17;
pub const DT_JMPREL: i64 = 23;
pub const DT_RELR: i64 = 36;
pub const DT_RELACOUNT: i64 = 0x6fff_fff9;
pub const R_X86_64_64: u32 = 1;
pub const R_X86_64_RELATIVE: u32 = 8;
pub const SHT_PROGBITS: u32 = 1;
pub const SHT_STRTAB: u32 = 3;
pub const SHT_RELA: u32 = 4;
pub const SHT_DYNAMIC: u32 = 6;
pub const SHT_NOBITS: u32 = 8;

#[derive(Clone, Debug)]
pub struct Phdr {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

#[derive(Clone, Debug)]
pub struct Shdr {
    /// Written into the generated `.shstrtab`.
    pub name: &'static str,
    pub sh_type: u32,
    pub flags: u64,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub entsize: u64,
}

#[derive(Clone, Debug)]
pub struct Rela {
    pub offset: u64,
    pub r_type: u32,
    pub addend: i64,
}

#[derive(Clone, Debug)]
pub struct TestImage {
    /// `e_ident`: magic, class, data, version, OS ABI, padding.
    pub ident: [u8; 16],
    pub e_type: u16,
    pub e_machine: u16,
    pub entry: u64,
    pub phoff: u64,
    pub shoff: u64,
    pub phentsize: u16,
    pub shentsize: u16,
    pub shstrndx: u16,
    pub phdrs: Vec<Phdr>,
    pub shdrs: Vec<Shdr>,
    /// `.dynamic` entries (tag, value); the rest of the 8 slots is DT_NULL.
    pub dynamic: Vec<(i64, u64)>,
    pub relas: Vec<Rela>,
    pub code: Vec<u8>,
    pub data: Vec<u8>,
    pub abi: AbiRecord,
}

impl TestImage {
    pub fn valid() -> TestImage {
        let code = vec![
            0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x31, 0xc0, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
            0xcc, 0xcc,
        ];
        let relas = vec![
            Rela {
                offset: DATA_OFF,
                r_type: R_X86_64_RELATIVE,
                addend: CODE_OFF as i64,
            },
            Rela {
                offset: DATA_OFF + 8,
                r_type: R_X86_64_RELATIVE,
                addend: DATA_OFF as i64 + 0x20,
            },
            Rela {
                offset: 0x2000,
                r_type: R_X86_64_RELATIVE,
                addend: 0x27f8,
            },
        ];
        let rx_end = CODE_OFF + code.len() as u64;
        let shdr = |name, sh_type, flags, offset, size, entsize| Shdr {
            name,
            sh_type,
            flags,
            addr: offset,
            offset,
            size,
            entsize,
        };
        TestImage {
            ident: [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            e_type: 3,
            e_machine: 62,
            entry: CODE_OFF,
            phoff: PHDR_OFF,
            shoff: SHDR_OFF,
            phentsize: 56,
            shentsize: 64,
            shstrndx: 7,
            phdrs: vec![
                Phdr {
                    p_type: PT_LOAD,
                    flags: PF_R | PF_X,
                    offset: 0,
                    vaddr: 0,
                    filesz: rx_end,
                    memsz: rx_end,
                    align: 0x1000,
                },
                Phdr {
                    p_type: PT_LOAD,
                    flags: PF_R | PF_W,
                    offset: DATA_SEG_OFF,
                    vaddr: DATA_SEG_OFF,
                    filesz: 0xc0,
                    memsz: 0x1800,
                    align: 0x1000,
                },
                Phdr {
                    p_type: PT_DYNAMIC,
                    flags: PF_R | PF_W,
                    offset: DYN_OFF,
                    vaddr: DYN_OFF,
                    filesz: 16 * DYN_CAP as u64,
                    memsz: 16 * DYN_CAP as u64,
                    align: 8,
                },
            ],
            shdrs: vec![
                shdr("", 0, 0, 0, 0, 0),
                shdr(".rela.dyn", SHT_RELA, 2, RELA_OFF, 3 * 24, 24),
                shdr(".text", SHT_PROGBITS, 6, CODE_OFF, 16, 0),
                shdr(".dynamic", SHT_DYNAMIC, 3, DYN_OFF, 16 * DYN_CAP as u64, 16),
                shdr(".data", SHT_PROGBITS, 3, DATA_OFF, 0x40, 0),
                shdr(".bss", SHT_NOBITS, 3, 0x10c0, 0x1740, 0),
                Shdr {
                    addr: 0,
                    ..shdr(
                        ".frond_abi",
                        SHT_PROGBITS,
                        0,
                        ABI_OFF,
                        ABI_RECORD_SIZE as u64,
                        0,
                    )
                },
                Shdr {
                    addr: 0,
                    ..shdr(".shstrtab", SHT_STRTAB, 0, SHSTRTAB_OFF, SHSTRTAB_CAP, 0)
                },
            ],
            dynamic: vec![
                (DT_RELA, RELA_OFF),
                (DT_RELASZ, 3 * 24),
                (DT_RELAENT, 24),
                (DT_RELACOUNT, 3),
                (DT_NULL, 0),
            ],
            relas,
            code,
            data: (0..0x40u8).collect(),
            abi: AbiRecord::new(RUSTC, rref::fingerprint::str(ENTRY_SIG), NAME),
        }
    }

    /// Index of the section named `name` (panics if absent: test bug).
    pub fn section(&mut self, name: &str) -> &mut Shdr {
        self.shdrs
            .iter_mut()
            .find(|s| s.name == name)
            .expect("no such section")
    }

    /// Sets the value of dynamic tag `tag` (test bug if absent).
    pub fn set_dyn(&mut self, tag: i64, value: u64) {
        self.dynamic
            .iter_mut()
            .find(|d| d.0 == tag)
            .expect("no such tag")
            .1 = value;
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |off: u64, bytes: &[u8]| {
            let off = off as usize;
            if out.len() < off + bytes.len() {
                out.resize(off + bytes.len(), 0);
            }
            out[off..off + bytes.len()].copy_from_slice(bytes);
        };
        // ELF header.
        let mut h = self.ident.to_vec();
        h.extend(self.e_type.to_le_bytes());
        h.extend(self.e_machine.to_le_bytes());
        h.extend(1u32.to_le_bytes()); // e_version
        h.extend(self.entry.to_le_bytes());
        h.extend(self.phoff.to_le_bytes());
        h.extend(self.shoff.to_le_bytes());
        h.extend(0u32.to_le_bytes()); // e_flags
        h.extend(64u16.to_le_bytes()); // e_ehsize
        h.extend(self.phentsize.to_le_bytes());
        h.extend((self.phdrs.len() as u16).to_le_bytes());
        h.extend(self.shentsize.to_le_bytes());
        h.extend((self.shdrs.len() as u16).to_le_bytes());
        h.extend(self.shstrndx.to_le_bytes());
        assert_eq!(h.len(), 64);
        put(0, &h);
        // Program headers.
        assert!(self.phdrs.len() <= 8, "room for 8 program headers");
        for (i, p) in self.phdrs.iter().enumerate() {
            let mut b = Vec::new();
            b.extend(p.p_type.to_le_bytes());
            b.extend(p.flags.to_le_bytes());
            for v in [p.offset, p.vaddr, p.vaddr, p.filesz, p.memsz, p.align] {
                b.extend(v.to_le_bytes());
            }
            put(PHDR_OFF + 56 * i as u64, &b);
        }
        // .rela.dyn
        assert!(self.relas.len() <= 8, "room for 8 relocations");
        for (i, r) in self.relas.iter().enumerate() {
            let mut b = r.offset.to_le_bytes().to_vec();
            b.extend(u64::from(r.r_type).to_le_bytes()); // r_info: symbol 0
            b.extend(r.addend.to_le_bytes());
            put(RELA_OFF + 24 * i as u64, &b);
        }
        put(CODE_OFF, &self.code);
        // .dynamic, padded with DT_NULL.
        assert!(
            self.dynamic.len() <= DYN_CAP,
            "room for {DYN_CAP} dynamic entries"
        );
        put(DYN_OFF, &[0; 16 * DYN_CAP]);
        for (i, (tag, val)) in self.dynamic.iter().enumerate() {
            let mut b = tag.to_le_bytes().to_vec();
            b.extend(val.to_le_bytes());
            put(DYN_OFF + 16 * i as u64, &b);
        }
        put(DATA_OFF, &self.data);
        put(ABI_OFF, &self.abi.to_bytes());
        // .shstrtab built from the section names, then the section headers.
        let mut strtab = vec![0u8];
        let mut name_off = Vec::new();
        for s in &self.shdrs {
            if s.name.is_empty() {
                name_off.push(0u32);
            } else {
                name_off.push(strtab.len() as u32);
                strtab.extend(s.name.as_bytes());
                strtab.push(0);
            }
        }
        assert!(
            strtab.len() as u64 <= SHSTRTAB_CAP,
            "section names do not fit"
        );
        strtab.resize(SHSTRTAB_CAP as usize, 0);
        put(SHSTRTAB_OFF, &strtab);
        for (i, s) in self.shdrs.iter().enumerate() {
            let mut b = name_off[i].to_le_bytes().to_vec();
            b.extend(s.sh_type.to_le_bytes());
            for v in [s.flags, s.addr, s.offset, s.size] {
                b.extend(v.to_le_bytes());
            }
            b.extend(0u32.to_le_bytes()); // sh_link
            b.extend(0u32.to_le_bytes()); // sh_info
            b.extend(8u64.to_le_bytes()); // sh_addralign
            b.extend(s.entsize.to_le_bytes());
            put(SHDR_OFF + 64 * i as u64, &b);
        }
        out
    }
}
