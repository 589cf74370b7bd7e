//! GDT and TSS. Everything runs in ring 0, so the GDT holds one code and one data segment
//! and the TSS exists only for its Interrupt Stack Table: the double fault, NMI and machine
//! check handlers run on their own stacks (each with a guard page), so a kernel stack
//! overflow is reported instead of triple-faulting.

use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

pub const IST_DOUBLE_FAULT: u16 = 0;
pub const IST_NMI: u16 = 1;
pub const IST_MACHINE_CHECK: u16 = 2;
/// Each IST stack: enough for the fault reporter's formatting and backtrace walk, and for
/// containing a domain's stack overflow (reporting it and reclaiming the domain run on
/// the double-fault stack).
pub const IST_STACK_SIZE: usize = 64 * 1024;

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// Builds and loads the GDT and TSS. `ist_tops` are the tops of the IST stacks.
pub fn init(ist_tops: [VirtAddr; 3]) {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[IST_DOUBLE_FAULT as usize] = ist_tops[0];
        tss.interrupt_stack_table[IST_NMI as usize] = ist_tops[1];
        tss.interrupt_stack_table[IST_MACHINE_CHECK as usize] = ist_tops[2];
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, which lives in a `static` forever.
    unsafe {
        CS::set_reg(sel.code);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        SS::set_reg(sel.data);
        load_tss(sel.tss);
    }
}
