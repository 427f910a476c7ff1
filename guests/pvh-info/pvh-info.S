/*
 * pvh-info: a PVH smoke guest. Entered through the Xen PVH ABI (32-bit
 * protected mode, paging off, flat segments, %ebx = struct hvm_start_info),
 * it prints on COM1 what the VMM handed it, then resets through the i8042:
 *
 *   pvh: magic 336ec578 version 1
 *   pvh: cmdline "<text>"
 *   pvh: modules <n>
 *   pvh: module <i>: <first>-<last>
 *   pvh: memmap <i>: <first>-<last> type <t>
 *   pvh: done
 *
 * Numbers in hex are fixed width (8 or 16 digits); counts are decimal.
 * Struct layouts: Xen include/public/arch-x86/hvm/start_info.h.
 */

/* COM1 data port and its line status register; LSR bit 5: transmit holding register empty. */
        .set COM1_DATA, 0x3f8
        .set COM1_LSR, COM1_DATA + 5
        .set LSR_THR_EMPTY, 0x20
/* LSR bit 6: the transmitter has sent every byte, so a reset loses nothing. */
        .set LSR_TRANSMITTER_EMPTY, 0x40
/* i8042 command port; command 0xfe pulses the CPU reset line. */
        .set I8042_COMMAND, 0x64
        .set I8042_PULSE_RESET, 0xfe

/* XEN_HVM_START_MAGIC_VALUE. */
        .set HVM_START_MAGIC, 0x336ec578
/* struct hvm_start_info offsets. */
        .set INFO_MAGIC, 0
        .set INFO_VERSION, 4
        .set INFO_NR_MODULES, 12
        .set INFO_MODLIST_PADDR, 16
        .set INFO_CMDLINE_PADDR, 24
        .set INFO_MEMMAP_PADDR, 40
        .set INFO_MEMMAP_ENTRIES, 48
/* struct hvm_modlist_entry: u64 paddr, u64 size, ...; 32 bytes. */
        .set MODLIST_ENTRY_SIZE, 32
/* struct hvm_memmap_table_entry: u64 addr, u64 size, u32 type, u32 reserved; 24 bytes. */
        .set MEMMAP_ENTRY_TYPE, 16
        .set MEMMAP_ENTRY_SIZE, 24
/* Bounds on how many entries are printed, so a garbage count cannot print forever. */
        .set MAX_PRINTED_MODULES, 16
        .set MAX_PRINTED_MEMMAP, 256

/* XEN_ELFNOTE_PHYS32_ENTRY: a 4-byte physical address of the 32-bit entry. */
        .set XEN_ELFNOTE_PHYS32_ENTRY, 18

        .section .note.Xen, "a", @note
        .balign 4
        .long 4                         /* namesz: "Xen\0" */
        .long 4                         /* descsz */
        .long XEN_ELFNOTE_PHYS32_ENTRY
        .asciz "Xen"
        .long pvh_start

        .text
        .code32
        .globl pvh_start
pvh_start:
        cli
        cld
        movl $stack_top, %esp
        movl %ebx, %ebp                 /* %ebp = hvm_start_info for the whole run */

        movl $text_magic, %esi
        call puts
        movl INFO_MAGIC(%ebp), %eax
        call put_hex32
        movl $text_version, %esi
        call puts
        movl INFO_VERSION(%ebp), %eax
        call put_decimal
        call put_newline
        cmpl $HVM_START_MAGIC, INFO_MAGIC(%ebp)
        jne bad_magic

        call print_cmdline
        call print_modules
        /* The memory map fields exist from version 1 on. */
        cmpl $1, INFO_VERSION(%ebp)
        jb done
        call print_memmap
        jmp done

bad_magic:
        movl $text_bad_magic, %esi
        call puts

done:
        movl $text_done, %esi
        call puts
        call wait_transmitter_empty
        movb $I8042_PULSE_RESET, %al
        outb %al, $I8042_COMMAND
halt_forever:
        cli
        hlt
        jmp halt_forever

/* pvh: cmdline "<text>", or (none) for a null pointer, (above 4 GiB) when unreachable without paging. */
print_cmdline:
        movl $text_cmdline, %esi
        call puts
        movl INFO_CMDLINE_PADDR(%ebp), %esi
        movl INFO_CMDLINE_PADDR+4(%ebp), %eax
        testl %eax, %eax
        jnz 1f
        testl %esi, %esi
        jz 2f
        movb $'"', %al
        call putc
        call puts
        movb $'"', %al
        call putc
        call put_newline
        ret
1:      movl $text_above_4g, %esi
        call puts
        ret
2:      movl $text_none, %esi
        call puts
        ret

/* pvh: modules <n>, then one line per module with its first and last byte. */
print_modules:
        movl $text_modules, %esi
        call puts
        movl INFO_NR_MODULES(%ebp), %eax
        call put_decimal
        call put_newline
        movl INFO_NR_MODULES(%ebp), %ecx
        cmpl $MAX_PRINTED_MODULES, %ecx
        jbe 1f
        movl $MAX_PRINTED_MODULES, %ecx
1:      movl INFO_MODLIST_PADDR(%ebp), %edi
        xorl %ebx, %ebx                 /* module index */
2:      cmpl %ecx, %ebx
        jae 3f
        movl $text_module, %esi
        call puts
        movl %ebx, %eax
        call put_decimal
        movl $text_colon, %esi
        call puts
        movl %edi, %esi
        call put_range
        call put_newline
        addl $MODLIST_ENTRY_SIZE, %edi
        incl %ebx
        jmp 2b
3:      ret

/* pvh: memmap <i>: <first>-<last> type <t>, for every entry. */
print_memmap:
        movl INFO_MEMMAP_ENTRIES(%ebp), %ecx
        cmpl $MAX_PRINTED_MEMMAP, %ecx
        jbe 1f
        movl $MAX_PRINTED_MEMMAP, %ecx
1:      movl INFO_MEMMAP_PADDR(%ebp), %edi
        xorl %ebx, %ebx                 /* entry index */
2:      cmpl %ecx, %ebx
        jae 3f
        movl $text_memmap, %esi
        call puts
        movl %ebx, %eax
        call put_decimal
        movl $text_colon, %esi
        call puts
        movl %edi, %esi
        call put_range
        movl $text_type, %esi
        call puts
        movl MEMMAP_ENTRY_TYPE(%edi), %eax
        call put_decimal
        call put_newline
        addl $MEMMAP_ENTRY_SIZE, %edi
        incl %ebx
        jmp 2b
3:      ret

/* Prints <first>-<last> for the {u64 address, u64 size} at %esi; last = address + size - 1. */
put_range:
        pushal
        movl (%esi), %eax
        movl 4(%esi), %edx
        call put_hex64
        movb $'-', %al
        call putc
        movl (%esi), %eax
        movl 4(%esi), %edx
        addl 8(%esi), %eax
        adcl 12(%esi), %edx
        subl $1, %eax
        sbbl $0, %edx
        call put_hex64
        popal
        ret

/* Prints %edx:%eax as 16 hex digits. */
put_hex64:
        pushl %eax
        movl %edx, %eax
        call put_hex32
        popl %eax
        call put_hex32
        ret

/* Prints %eax as 8 lowercase hex digits. */
put_hex32:
        pushal
        movl %eax, %ebx
        movl $8, %ecx
1:      roll $4, %ebx
        movb %bl, %al
        andb $0x0f, %al
        cmpb $10, %al
        jb 2f
        addb $('a' - 10), %al
        jmp 3f
2:      addb $'0', %al
3:      call putc
        loop 1b
        popal
        ret

/* Prints %eax in decimal. */
put_decimal:
        pushal
        movl $10, %ecx
        xorl %edi, %edi                 /* digits pushed */
1:      xorl %edx, %edx
        divl %ecx
        pushl %edx
        incl %edi
        testl %eax, %eax
        jnz 1b
2:      popl %eax
        addb $'0', %al
        call putc
        decl %edi
        jnz 2b
        popal
        ret

put_newline:
        pushl %eax
        movb $'\n', %al
        call putc
        popl %eax
        ret

/* Prints the NUL-terminated string at %esi. */
puts:
        pushal
1:      lodsb
        testb %al, %al
        jz 2f
        call putc
        jmp 1b
2:      popal
        ret

/* Writes %al to COM1 once the transmit holding register is empty. */
putc:
        pushl %edx
        pushl %eax
        movw $COM1_LSR, %dx
1:      inb %dx, %al
        testb $LSR_THR_EMPTY, %al
        jz 1b
        popl %eax
        movw $COM1_DATA, %dx
        outb %al, %dx
        popl %edx
        ret

wait_transmitter_empty:
        pushl %edx
        pushl %eax
        movw $COM1_LSR, %dx
1:      inb %dx, %al
        testb $LSR_TRANSMITTER_EMPTY, %al
        jz 1b
        popl %eax
        popl %edx
        ret

        .section .rodata
text_magic:     .asciz "pvh: magic "
text_version:   .asciz " version "
text_bad_magic: .asciz "pvh: bad magic, not a PVH start\n"
text_cmdline:   .asciz "pvh: cmdline "
text_none:      .asciz "(none)\n"
text_above_4g:  .asciz "(above 4 GiB)\n"
text_modules:   .asciz "pvh: modules "
text_module:    .asciz "pvh: module "
text_memmap:    .asciz "pvh: memmap "
text_colon:     .asciz ": "
text_type:      .asciz " type "
text_done:      .asciz "pvh: done\n"

        .section .data
        .balign 16
stack:
        .fill 4096, 1, 0
stack_top:
