/*
 * Fixed addresses and sizes of the bare-metal test guests, shared by the
 * assembly start-up (start.S) and the C runtime. See README.md for the map.
 */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

/* Every guest is linked (and loaded) here: the 1 MiB mark. */
#define GUEST_LOAD_ADDR 0x100000

/* Selectors of the runtime's own GDT (start.S). */
#define SEL_CODE64 0x08
#define SEL_DATA 0x10
#define SEL_CODE32 0x18

/* The boot CPU's stack, in .bss. */
#define BSP_STACK_SIZE 0x4000

/* Each IDT stub in start.S is padded to this many bytes (stub v = isr_stubs + v * ISR_STUB_SIZE). */
#define ISR_STUB_SIZE 16

/* Page-table entry flags of the runtime's 2 MiB identity map. */
#define PTE_PRESENT 0x001
#define PTE_WRITE 0x002
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_LARGE 0x080

/* Control-register and MSR bits used to enter long mode. */
#define CR0_PE 0x00000001
#define CR0_PG 0x80000000
#define CR4_PAE 0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LME 0x00000100

#ifdef __ASSEMBLER__
/*
 * The two ways into long mode, shared by start.S (PVH entry) and the smp
 * trampoline: both run in 32-bit protected mode on the runtime GDT with
 * paging off, and differ only in where CR3 comes from and where they go.
 */

/* 32-bit: flat data segments, PAE, CR3 = cr3 (an operand for movl, no spaces), EFER.LME, paging; then far-jumps to target. */
.macro ENTER_LONG_MODE cr3:req, target:req
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl \cr3, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $(CR0_PG | CR0_PE), %eax	/* PE is on already; or-ing it again keeps one sequence for both */
	movl %eax, %cr0
	ljmp $SEL_CODE64, $\target
.endm

/* 64-bit: ds, es and ss = the flat data selector; fs and gs null (unused in long mode). Clobbers eax. */
.macro LOAD_DATA_SEGMENTS64
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
.endm
#endif

#endif
