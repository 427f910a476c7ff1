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

#endif
