/*
 * Start-up code shared by every test guest.
 *
 * Two ways in, one way on:
 *  - _start (e_entry): 64-bit entry for tsvmm, which starts the boot vCPU the
 *    way crosvm starts a Linux kernel (long mode, identity map of the low
 *    1 GiB, GDT at 0x500, rsp 0x8000, rsi = zero page 0x7000).
 *  - pvh_start32 (Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY): 32-bit protected
 *    mode with paging off, ebx = hvm_start_info. QEMU boots this one with
 *    -kernel. It enables PAE paging and long mode by itself.
 * Both continue at common64, which installs the runtime's own GDT, page
 * tables (4 GiB identity, 2 MiB pages, 3-4 GiB uncacheable), stack and IDT,
 * clears .bss, and calls runtime_init(), guest_main() and guest_reset().
 */
#include "layout.h"

/* ---- The PVH entry note (read from the PT_NOTE segment, see guest.ld) ---- */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4			/* n_namesz: "Xen\0" */
	.long 4			/* n_descsz: a 4-byte physical address */
	.long 18		/* n_type: XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start32

/* ---- Entry points ---- */
	.section .text.entry, "ax", @progbits
	.code64
	.globl _start
	.type _start, @function
_start:
	cli
	cld
	movq %rsi, boot_zero_page(%rip)
	movl $1, boot_protocol(%rip)
	jmp common64

	.code32
	.globl pvh_start32
	.type pvh_start32, @function
pvh_start32:
	cli
	cld
	movl %ebx, boot_start_info
	movl $2, boot_protocol
	lgdt gdt_desc			/* the low 6 bytes are the 32-bit form */
	ljmp $SEL_CODE32, $1f
1:	ENTER_LONG_MODE $pml4, common64

	.code64
	.type common64, @function
common64:
	movl $pml4, %eax		/* our tables: the image at 1 MiB is identity-mapped in both */
	movq %rax, %cr3
	lgdt gdt_desc(%rip)
	LOAD_DATA_SEGMENTS64
	leaq bsp_stack_top(%rip), %rsp
	pushq $SEL_CODE64
	leaq 2f(%rip), %rax
	pushq %rax
	lretq				/* reload CS from our GDT */
2:	leaq __bss_start(%rip), %rdi	/* clear .bss (the stack too: nothing lives there yet) */
	leaq __bss_end(%rip), %rcx
	subq %rdi, %rcx
	xorl %eax, %eax
	rep stosb
	call runtime_init
	call guest_main
	call guest_reset		/* does not return */
3:	cli
	hlt
	jmp 3b

/* ---- Interrupt and exception stubs: 256 of them, ISR_STUB_SIZE bytes apart ---- */
	.text
	.balign ISR_STUB_SIZE
	.globl isr_stubs
isr_stubs:
	.set vector, 0
	.rept 256
	.balign ISR_STUB_SIZE
	/* the CPU pushes an error code for 8, 10-14, 17, 21, 29 and 30; push 0 for the rest */
	.if (vector == 8) || ((vector >= 10) && (vector <= 14)) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
	.else
	pushq $0
	.endif
	pushq $vector
	jmp isr_common
	.set vector, vector + 1
	.endr

/* Saves the general registers as a struct isr_frame (guest.h) and calls isr_dispatch(frame). */
	.type isr_common, @function
isr_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi
	movq %rsp, %rbx
	andq $-16, %rsp
	cld
	call isr_dispatch
	movq %rbx, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp			/* vector and error code */
	iretq

/* ---- GDT, descriptors and boot information ---- */
	.data
	.balign 16
	.globl gdt
gdt:
	.quad 0				/* 0x00 null */
	.quad 0x00af9a000000ffff	/* 0x08 64-bit code, ring 0 */
	.quad 0x00cf92000000ffff	/* 0x10 flat data, ring 0 */
	.quad 0x00cf9a000000ffff	/* 0x18 flat 32-bit code (PVH entry, AP trampoline) */
gdt_end:

	.balign 16
	.globl gdt_desc
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt

	.balign 16
	.globl idt_desc
idt_desc:
	.word 256 * 16 - 1
	.quad idt

	.balign 8
	.globl boot_zero_page, boot_start_info, boot_protocol
boot_zero_page:			/* rsi at the 64-bit entry */
	.quad 0
boot_start_info:		/* ebx at the PVH entry */
	.quad 0
boot_protocol:			/* 1 = 64-bit entry, 2 = PVH entry */
	.long 0

/*
 * ---- Page tables: identity map of 0-4 GiB with 2 MiB pages, built at assembly time ----
 * pml4[0] -> pdpt; pdpt[0..3] -> four page directories (pd); 3-4 GiB is PCD|PWT.
 */
	.section .pagetables, "aw", @progbits
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + (PTE_PRESENT | PTE_WRITE)
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x0000 + (PTE_PRESENT | PTE_WRITE)
	.quad pd + 0x1000 + (PTE_PRESENT | PTE_WRITE)
	.quad pd + 0x2000 + (PTE_PRESENT | PTE_WRITE)
	.quad pd + 0x3000 + (PTE_PRESENT | PTE_WRITE)
	.fill 508, 8, 0
pd:
	.set page, 0
	.rept 2048
	.if page >= 0xc0000000
	.quad page + (PTE_PRESENT | PTE_WRITE | PTE_LARGE | PTE_PCD | PTE_PWT)
	.else
	.quad page + (PTE_PRESENT | PTE_WRITE | PTE_LARGE)
	.endif
	.set page, page + 0x200000
	.endr

/* ---- .bss: the IDT and the boot stack ---- */
	.bss
	.balign 4096
	.globl idt
idt:
	.skip 256 * 16
	.balign 16
bsp_stack:
	.skip BSP_STACK_SIZE
	.globl bsp_stack_top
bsp_stack_top:

	.section .note.GNU-stack, "", @progbits
