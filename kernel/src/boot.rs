//! PVH entry: from 32-bit protected mode to 64-bit Rust.
//!
//! QEMU's `-kernel` loader finds the `XEN_ELFNOTE_PHYS32_ENTRY` note below, loads the ELF
//! segments at their physical addresses and jumps to `pvh_start` with paging off, flat 32-bit
//! segments, interrupts disabled and `ebx` = physical address of `hvm_start_info`.
//! This code zeroes `.bss`, identity-maps the first 4 GiB with 2 MiB pages (enough for the
//! kernel, its boot structures and the boot module), enables long mode and calls
//! [`crate::kernel_main`] on the boot stack. `crate::memory::paging` replaces these tables
//! with finer ones (guard pages, section permissions) early in boot.
//!
//! Invariants: the boot stack has an unmapped-later guard page under it; nothing here
//! touches memory outside the kernel image.

/// Size of the boot stack (also the idle thread's stack for the whole run).
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a"
    .p2align 2
    .long 4                 /* namesz: "Xen\0" */
    .long 4                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start

    .section .bss.boot, "aw", @nobits
    .p2align 12
    .global boot_pml4
boot_pml4:      .skip 4096
boot_pdpt:      .skip 4096
boot_pd:        .skip 4096 * 4
    .global boot_stack_guard
boot_stack_guard: .skip 4096
    .global boot_stack_bottom
boot_stack_bottom: .skip {stack_size}
    .global boot_stack_top
boot_stack_top:

    .section .rodata.boot, "a"
    .p2align 3
boot_gdt:
    .quad 0                         /* null */
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff        /* 0x10: data, DPL 0 */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .text.boot, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    mov %ebx, %esi                  /* keep hvm_start_info across the setup */

    /* Zero .bss (QEMU zero-fills, but do not rely on a loader's courtesy). */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl

    /* 4 page directories = 2048 entries of 2 MiB: identity map of [0, 4 GiB). */
    mov $boot_pd, %edi
    mov $0x83, %eax                 /* present | writable | huge */
    xor %edx, %edx
    mov $2048, %ecx
1:  mov %eax, (%edi)
    movl $0, 4(%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b

    mov $boot_pdpt, %edi
    mov $boot_pd + 3, %eax
    mov $4, %ecx
2:  mov %eax, (%edi)
    movl $0, 4(%edi)
    add $4096, %eax
    add $8, %edi
    loop 2b

    movl $boot_pdpt + 3, boot_pml4
    mov $boot_pml4, %eax
    mov %eax, %cr3

    mov %cr4, %eax
    or $(1 << 5), %eax              /* PAE */
    mov %eax, %cr4

    mov $0xC0000080, %ecx           /* EFER */
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax /* LME | NXE */
    wrmsr

    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | 1), %eax  /* PG | WP | PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $3f

    .code64
3:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp
    xor %ebp, %ebp
    mov %esi, %edi                  /* arg 0: physical address of hvm_start_info */
    call kernel_main
4:  cli
    hlt
    jmp 4b
"#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);
