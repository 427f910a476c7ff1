/*
 * The AP start-up path of the smp guest.
 *
 * smp_trampoline_start..smp_trampoline_end is copied by the BSP to
 * TRAMPOLINE_BASE (0x3000, SIPI vector 0x03) and runs there: real mode ->
 * 32-bit protected mode (runtime GDT, selector 0x18) -> long mode with the
 * BSP's CR3 (patched into smp_trampoline_cr3 in the copy), then jumps to
 * ap_entry64 in the image. ap_entry64 takes a slot with lock xadd, gets the
 * slot's stack from ap_stacks and calls ap_main(slot). APs past MAX_APS park.
 */
#include "layout.h"
#include "smp.h"

/* Where a trampoline label is once the trampoline is copied to TRAMPOLINE_BASE. */
#define TADDR(label) ((label) - smp_trampoline_start + TRAMPOLINE_BASE)

	.text
	.balign 16
	.globl smp_trampoline_start
smp_trampoline_start:
	.code16
	cli
	cld
	movw %cs, %ax			/* cs = TRAMPOLINE_BASE >> 4 */
	movw %ax, %ds
	lgdtl tramp_gdtr - smp_trampoline_start
	movl %cr0, %eax
	orl $CR0_PE, %eax
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $TADDR(tramp32)

	.code32
tramp32:
	ENTER_LONG_MODE tramp_cr3_copy, ap_entry64
	.set tramp_cr3_copy, TADDR(smp_trampoline_cr3)	/* a name: a macro argument cannot hold spaces */

	.balign 8
tramp_gdtr:				/* lgdtl: 16-bit limit, 32-bit base of the runtime GDT */
	.word 4 * 8 - 1
	.long gdt
	.globl smp_trampoline_cr3
smp_trampoline_cr3:			/* the BSP writes its CR3 here in the copy */
	.long 0
	.globl smp_trampoline_end
smp_trampoline_end:

	.code64
	.type ap_entry64, @function
ap_entry64:
	LOAD_DATA_SEGMENTS64
	movl $1, %edi
	lock xaddl %edi, ap_next_slot(%rip)	/* edi = this AP's slot */
	cmpl $MAX_APS, %edi
	jae ap_park
	lidt idt_desc(%rip)		/* faults print like the BSP's */
	leal 1(%rdi), %eax
	imull $AP_STACK_SIZE, %eax
	leaq ap_stacks(%rip), %rsp
	addq %rax, %rsp			/* top of slot edi's stack */
	call ap_main
ap_park:
	cli
	hlt
	jmp ap_park

	.bss
	.balign 4
	.globl ap_next_slot
ap_next_slot:
	.long 0
	.balign 16
ap_stacks:
	.skip MAX_APS * AP_STACK_SIZE

	.section .note.GNU-stack, "", @progbits
