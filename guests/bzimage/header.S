/*
 * A minimal bzImage (Documentation/arch/x86/boot.rst): a 2-sector real-mode
 * setup area that holds only the setup header, then the protected-mode part,
 * which the loader puts at its load address (1 MiB for a relocatable kernel
 * under tsvmm). Like Linux's arch/x86/boot/compressed/head_64.S:
 *   load address + 0x000: startup_32, the 32-bit entry (unused here: it halts)
 *   load address + 0x200: startup_64, the 64-bit entry, %rsi = struct boot_params
 * The protected-mode code is position independent (RIP-relative only), as a
 * relocatable kernel's must be; the Makefile links it at two addresses and
 * checks that the bytes are the same.
 */
	.set SETUP_SECTS, 1		/* setup = (1 + 1) sectors = 0x400 bytes: sector 0 + the rest of the header */
	.set BOOT_PROTOCOL, 0x020f	/* 2.15 */
	.set LOADED_HIGH, 0x01		/* loadflags: protected-mode code at 0x100000 */
	.set XLF_KERNEL_64, 0x0001	/* xloadflags: startup_64 at +0x200 */
	.set KERNEL_ALIGNMENT, 0x200000	/* 2 MiB */
	.set MIN_ALIGNMENT_LG2, 21	/* 2 MiB */
	.set CMDLINE_SIZE, 2047		/* as Linux: COMMAND_LINE_SIZE - 1 */
	.set PREF_ADDRESS, 0x1000000	/* 16 MiB, CONFIG_PHYSICAL_START */
	.set INITRD_ADDR_MAX, 0x7fffffff

/* ---- Real-mode setup: the boot sector, then the header at 0x1f1 (boot.rst "The Real-Mode Kernel Header") ---- */
	.section .setup, "a"
	.code16
setup_start:
	cli				/* never run by tsvmm; a real-mode loader would land at 0x200 */
	hlt
	.org 0x1f1
	.byte SETUP_SECTS		/* 0x1f1 setup_sects */
	.word 0				/* 0x1f2 root_flags */
	.long pm_syssize		/* 0x1f4 syssize: protected-mode bytes / 16 (linker script) */
	.word 0				/* 0x1f8 ram_size */
	.word 0xffff			/* 0x1fa vid_mode: normal */
	.word 0				/* 0x1fc root_dev */
	.word 0xaa55			/* 0x1fe boot_flag */
	.byte 0xeb			/* 0x200 jump: short jmp over the header to setup_code */
	.byte setup_code - 1f
1:	.ascii "HdrS"			/* 0x202 header */
	.word BOOT_PROTOCOL		/* 0x206 version */
	.long 0				/* 0x208 realmode_swtch */
	.word 0x1000			/* 0x20c start_sys_seg (obsolete) */
	.word kernel_version - 0x200	/* 0x20e kernel_version: offset of the string, - 0x200 */
	.byte 0				/* 0x210 type_of_loader: written by the loader */
	.byte LOADED_HIGH		/* 0x211 loadflags */
	.word 0x8000			/* 0x212 setup_move_size */
	.long 0x100000			/* 0x214 code32_start */
	.long 0				/* 0x218 ramdisk_image */
	.long 0				/* 0x21c ramdisk_size */
	.long 0				/* 0x220 bootsect_kludge */
	.word 0				/* 0x224 heap_end_ptr */
	.byte 0				/* 0x226 ext_loader_ver */
	.byte 0				/* 0x227 ext_loader_type */
	.long 0				/* 0x228 cmd_line_ptr */
	.long INITRD_ADDR_MAX		/* 0x22c initrd_addr_max */
	.long KERNEL_ALIGNMENT		/* 0x230 kernel_alignment */
	.byte 1				/* 0x234 relocatable_kernel */
	.byte MIN_ALIGNMENT_LG2		/* 0x235 min_alignment */
	.word XLF_KERNEL_64		/* 0x236 xloadflags */
	.long CMDLINE_SIZE		/* 0x238 cmdline_size */
	.long 0				/* 0x23c hardware_subarch: PC */
	.quad 0				/* 0x240 hardware_subarch_data */
	.long 0				/* 0x248 payload_offset */
	.long 0				/* 0x24c payload_length */
	.quad 0				/* 0x250 setup_data */
	.quad PREF_ADDRESS		/* 0x258 pref_address */
	.long pm_init_size		/* 0x260 init_size (linker script) */
	.long 0				/* 0x264 handover_offset: no EFI handover */
	.long 0				/* 0x268 kernel_info_offset */
setup_code:				/* 0x26c: the end of the header */
	cli
	hlt
kernel_version:
	.asciz "tsvmm-bzimage-test"
	.org 0x400			/* (SETUP_SECTS + 1) * 512 */

/* ---- Protected-mode part ---- */
	.section .head.text, "ax"
	.code32
	.globl startup_32
startup_32:				/* the 32-bit entry: this test kernel only supports the 64-bit one */
	cli
1:	hlt
	jmp 1b

	.code64
	.org 0x200
	.globl startup_64
startup_64:				/* long mode, identity map, %rsi = boot_params */
	cli
	cld
	leaq stack_top(%rip), %rsp
	leaq startup_64(%rip), %rdi	/* the address we were entered at */
	call bzimage_main		/* (entry, boot_params): %rsi is still the loader's */
2:	cli
	hlt
	jmp 2b

	.bss
	.balign 16
stack:
	.skip 4096
stack_top:

	.section .note.GNU-stack, "", @progbits
