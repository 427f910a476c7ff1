/*
 * guests/mbr/mbr.S: a two-stage real-mode boot program for testing a BIOS
 * (SeaBIOS) and its disk path. The BIOS loads sector 0 at 0x0000:0x7c00 and
 * jumps there with DL = boot drive. Everything it prints goes straight to COM1
 * (0x3f8, polling LSR bit 5), each line starting with "mbr: ", ending "\r\n":
 *
 *   mbr: running, boot drive 80
 *   mbr: int13 ext 30 api 0007, stage 2 loaded (N sectors)
 *   mbr: disk 00000800 sectors of 0200 bytes                (INT 13h AH=48h)
 *   mbr: int13 ext read ok (16 sectors at lba 16)           (AH=42h, pattern checked)
 *   mbr: e820 N entries
 *   mbr: e820 <base, 16 hex digits> <length, 16 hex digits> <type, decimal>   (N lines)
 *   mbr: reset
 *
 * then it resets the machine through the i8042 (0xfe to port 0x64), which
 * makes QEMU -no-reboot and tsvmm exit. Any failure prints one "mbr: ..."
 * line saying what failed (with the BIOS's AH where there is one) and resets.
 *
 * The pattern sectors (written by scripts/make-disk-images.sh): sector s,
 * byte i = (s*7 + i) & 0xff, except bytes 0..3 = s as 32-bit little endian.
 *
 * Memory used: 0x1000..0x2fff read buffer, 0x3000.. e820 entries (24 bytes
 * each, at most E820_MAX), stack below 0x7c00, stage 2 at 0x7e00.
 */

#define COM1		0x3f8
#define PAT_LBA		16
#define PAT_COUNT	16
#define READ_BUF	0x1000
#define E820_BUF	0x3000
#define E820_MAX	64
#define SMAP		0x534d4150

	.code16

/* ================= stage 1: sector 0 ================= */
	.section .stage1, "ax"
	.globl _start
_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw $0x7c00, %sp
	ljmp $0, $1f			/* CS:IP = 0000:7cxx whatever the BIOS used */
1:	sti
	cld
	movb %dl, boot_drive

	/* COM1: 115200 8N1, FIFOs on, DTR|RTS (the BIOS may not have set it up) */
	movw $COM1 + 1, %dx
	xorb %al, %al
	outb %al, %dx			/* IER = 0 */
	movw $COM1 + 3, %dx
	movb $0x80, %al
	outb %al, %dx			/* LCR: DLAB */
	movw $COM1, %dx
	movb $1, %al
	outb %al, %dx			/* DLL = 1 */
	incw %dx
	xorb %al, %al
	outb %al, %dx			/* DLM = 0 */
	movw $COM1 + 3, %dx
	movb $0x03, %al
	outb %al, %dx			/* LCR: 8N1 */
	decw %dx
	movb $0x07, %al
	outb %al, %dx			/* FCR: enable, clear */
	movw $COM1 + 4, %dx
	movb $0x03, %al
	outb %al, %dx			/* MCR: DTR | RTS */

	movw $msg_running, %si
	call line
	movb boot_drive, %al
	call hex2
	call crlf

	/* INT 13h extensions: AH=41h, BX=55AAh -> CF clear, BX=AA55h, CX bit 0 (AH=42h..48h) */
	movb $0x41, %ah
	movw $0x55aa, %bx
	movb boot_drive, %dl
	int $0x13
	movw $msg_no_ext, %si
	jc fail_ah
	cmpw $0xaa55, %bx
	jne fail
	testb $1, %cl
	jz fail
	movb %ah, ext_version
	movw %cx, ext_api

	/* stage 2: LBA 1.. to 0000:7e00 */
	movw $dap, %si
	movb $0x42, %ah
	movb boot_drive, %dl
	int $0x13
	movw $msg_stage2_failed, %si
	jc fail_ah
	jmp stage2

/* prints SI's message, then " ah=XX" from AH, then resets */
fail_ah:
	call line
	movb $' ', %al
	call putc
	movb $'a', %al
	call putc
	movb $'h', %al
	call putc
	movb $'=', %al
	call putc
	movb %ah, %al
	call hex2
	jmp 1f
/* prints SI's message, then resets */
fail:
	call line
1:	call crlf
	jmp reset

/* "mbr: " and the NUL-terminated string at SI; every register kept */
line:
	pushw %si
	movw $msg_prefix, %si
	call puts
	popw %si
/* the NUL-terminated string at SI; every register kept */
puts:
	pushw %ax
	pushw %si
1:	lodsb
	testb %al, %al
	jz 2f
	call putc
	jmp 1b
2:	popw %si
	popw %ax
	ret

crlf:
	pushw %si
	movw $msg_crlf, %si
	call puts
	popw %si
	ret

/* AL to COM1 once the transmit holding register is empty (bounded wait); every register kept */
putc:
	pushw %ax
	pushw %cx
	pushw %dx
	movb %al, %ah
	movw $COM1 + 5, %dx
	xorw %cx, %cx			/* at most 65536 polls */
1:	inb %dx, %al
	testb $0x20, %al		/* LSR.THRE */
	loopz 1b
	movw $COM1, %dx
	movb %ah, %al
	outb %al, %dx
	popw %dx
	popw %cx
	popw %ax
	ret

/* the low CX hex digits of EAX (hex2: of AL, hex4: of AX, hex8: of EAX); every register kept */
hex2:	pushw %cx
	movw $2, %cx
	jmp hexn
hex4:	pushw %cx
	movw $4, %cx
	jmp hexn
hex8:	pushw %cx
	movw $8, %cx
hexn:	pushl %eax
	pushw %cx
	negw %cx
	addw $8, %cx
	shlw $2, %cx
	shll %cl, %eax			/* the wanted digits to the top */
	popw %cx
1:	roll $4, %eax
	pushw %ax
	andb $0x0f, %al
	addb $'0', %al
	cmpb $'9', %al
	jbe 2f
	addb $'a' - '9' - 1, %al
2:	call putc
	popw %ax
	loop 1b
	popl %eax
	popw %cx
	ret

reset:
	movw $COM1 + 5, %dx		/* let the last byte leave the UART first */
	xorw %cx, %cx
1:	inb %dx, %al
	testb $0x40, %al		/* LSR.TEMT */
	loopz 1b
	cli
	movb $0xfe, %al			/* i8042: pulse the reset line */
	outb %al, $0x64
2:	hlt
	jmp 2b

	.balign 4
/* INT 13h AH=42h disk address packet for stage 2 */
dap:	.byte 16, 0
	.word stage2_sectors
	.word 0x7e00, 0
	.quad 1

boot_drive:	.byte 0
ext_version:	.byte 0
ext_api:	.word 0

msg_prefix:	.asciz "mbr: "
msg_crlf:	.asciz "\r\n"
msg_running:	.asciz "running, boot drive "
msg_no_ext:	.asciz "int13 ext missing (ah=41h)"
msg_stage2_failed: .asciz "int13 ext read of stage 2 failed"

/* ================= stage 2: sectors 1.. ================= */
	.section .stage2, "ax"
stage2:
	movw $msg_ext, %si
	call line
	movb ext_version, %al
	call hex2
	movw $msg_api, %si
	call puts
	movw ext_api, %ax
	call hex4
	movw $msg_loaded, %si
	call puts
	movw $stage2_sectors, %ax
	call dec
	movw $msg_sectors_paren, %si
	call puts
	call crlf

	/* AH=48h: drive parameters (result buffer size 1Ah: EDD 1.x fields) */
	movw $params, %si
	movw $0x1a, (%si)
	movb $0x48, %ah
	movb boot_drive, %dl
	int $0x13
	movw $msg_params_failed, %si
	jc fail_ah
	movw $msg_disk, %si
	call line
	movl params + 0x14, %eax	/* total sectors, high half */
	testl %eax, %eax
	jz 1f
	call hex8
1:	movl params + 0x10, %eax	/* total sectors, low half */
	call hex8
	movw $msg_sectors_of, %si
	call puts
	movw params + 0x18, %ax		/* bytes per sector */
	call hex4
	movw $msg_bytes, %si
	call puts
	call crlf

	/* AH=42h: PAT_COUNT sectors at LBA PAT_LBA into a buffer first filled with 0xee */
	movw $READ_BUF, %di
	movw $PAT_COUNT * 512, %cx
	movb $0xee, %al
	rep stosb
	movw $pattern_dap, %si
	movb $0x42, %ah
	movb boot_drive, %dl
	int $0x13
	movw $msg_read_failed, %si
	jc fail_ah
	cmpw $PAT_COUNT, pattern_dap + 2	/* blocks transferred */
	movw $msg_read_short, %si
	jne fail

	movw $READ_BUF, %bx
	movl $PAT_LBA, %ebp
2:	xorw %si, %si
	cmpl %ebp, (%bx)		/* bytes 0..3: the LBA */
	jne mismatch
	movw %bp, %ax
	movb $7, %dl
	mulb %dl
	movb %al, %dh			/* (s*7) & 0xff */
	movw $4, %si
3:	movw %si, %ax
	addb %dh, %al			/* (s*7 + i) & 0xff */
	cmpb %al, (%bx,%si)
	jne mismatch
	incw %si
	cmpw $512, %si
	jb 3b
	addw $512, %bx
	incl %ebp
	cmpl $PAT_LBA + PAT_COUNT, %ebp
	jb 2b
	movw $msg_read_ok, %si
	call line
	call crlf

	/* INT 15h E820: entries to E820_BUF until EBX = 0 or CF */
	xorl %ebx, %ebx
	movw $E820_BUF, %di
	xorw %bp, %bp
4:	movl $1, 20(%di)		/* ACPI 3 attributes "valid", for a BIOS that fills only 20 bytes */
	movl $0xe820, %eax
	movl $SMAP, %edx
	movl $24, %ecx
	int $0x15
	jc 5f				/* CF: past the last entry (or no map) */
	cmpl $SMAP, %eax
	movw $msg_e820_bad, %si
	jne fail
	incw %bp
	addw $24, %di
	testl %ebx, %ebx
	jz 5f
	cmpw $E820_MAX, %bp
	jb 4b
5:	movw $msg_e820, %si
	call line
	movw %bp, %ax
	call dec
	movw $msg_entries, %si
	call puts
	call crlf
	movw $E820_BUF, %di
6:	testw %bp, %bp
	jz 7f
	movw $msg_e820, %si
	call line
	movl 4(%di), %eax
	call hex8
	movl (%di), %eax
	call hex8
	movb $' ', %al
	call putc
	movl 12(%di), %eax
	call hex8
	movl 8(%di), %eax
	call hex8
	movb $' ', %al
	call putc
	movw 16(%di), %ax
	call dec
	call crlf
	addw $24, %di
	decw %bp
	jmp 6b

7:	movw $msg_reset, %si
	call line
	call crlf
	jmp reset

/* pattern mismatch: LBA in EBP, byte index in SI, sector buffer at BX */
mismatch:
	pushw %si
	movw $msg_mismatch, %si
	call line
	movl %ebp, %eax
	call dec
	movw $msg_byte, %si
	call puts
	popw %si
	movw %si, %ax
	call dec
	pushw %si
	movw $msg_got, %si
	call puts
	popw %si
	movb (%bx,%si), %al
	call hex2
	call crlf
	jmp reset

/* AX in decimal; every register kept */
dec:
	pushw %ax
	pushw %cx
	pushw %dx
	pushw %bx
	movw $10, %bx
	xorw %cx, %cx
1:	xorw %dx, %dx
	divw %bx
	pushw %dx
	incw %cx
	testw %ax, %ax
	jnz 1b
2:	popw %ax
	addb $'0', %al
	call putc
	loop 2b
	popw %bx
	popw %dx
	popw %cx
	popw %ax
	ret

	.balign 4
pattern_dap:
	.byte 16, 0
	.word PAT_COUNT
	.word READ_BUF, 0
	.quad PAT_LBA
params:	.fill 0x1e, 1, 0

msg_ext:	.asciz "int13 ext "
msg_api:	.asciz " api "
msg_loaded:	.asciz ", stage 2 loaded ("
msg_sectors_paren: .asciz " sectors)"
msg_params_failed: .asciz "int13 ext drive parameters (ah=48h) failed"
msg_disk:	.asciz "disk "
msg_sectors_of:	.asciz " sectors of "
msg_bytes:	.asciz " bytes"
msg_read_failed: .asciz "int13 ext read (ah=42h) failed"
msg_read_short:	.asciz "int13 ext read (ah=42h) transferred fewer sectors than asked"
msg_read_ok:	.asciz "int13 ext read ok (16 sectors at lba 16)"
msg_mismatch:	.asciz "int13 ext read: pattern mismatch at lba "
msg_byte:	.asciz " byte "
msg_got:	.asciz " got "
msg_e820_bad:	.asciz "e820 failed (eax != SMAP)"
msg_e820:	.asciz "e820 "
msg_entries:	.asciz " entries"
msg_reset:	.asciz "reset"
