; The accelerator probe's guest (builder/accel.py embeds the assembled bytes;
; tests/unit/test_accel.py reassembles this with nasm and compares).
; SeaBIOS loads it at 0x7c00 in real mode. It does what every x86-64 kernel
; does first: builds identity-mapped page tables, turns on PAE, long mode and
; paging, and jumps to 64-bit code. That code writes 0x2a to QEMU's
; isa-debug-exit port (0xf4), so QEMU exits with status (0x2a << 1) | 1 = 85.
; It runs that code from 1 MiB, as a kernel does: on the machines where
; KVM is broken, a kernel hangs there and so does this guest.
bits 16
org 0x7c00
start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    mov di, 0x1000              ; PML4 0x1000, PDPT 0x2000, PD 0x3000
    mov cx, 0x1800              ; zero 3 pages (words)
    rep stosw
    mov word [0x1000], 0x2003   ; PML4[0] -> PDPT, present + writable
    mov word [0x2000], 0x3003   ; PDPT[0] -> PD
    mov word [0x3000], 0x0083   ; PD[0] -> the first 2 MiB, a large page
    lgdt [gdt_descriptor]
    mov eax, cr4
    or eax, 0x20                ; PAE
    mov cr4, eax
    mov eax, 0x1000
    mov cr3, eax
    mov ecx, 0xc0000080         ; EFER
    rdmsr
    or eax, 0x100               ; LME
    wrmsr
    mov eax, cr0
    or eax, 0x80000001          ; PG + PE: real mode straight to long mode
    mov cr0, eax
    jmp 0x08:long_mode
bits 64
long_mode:
    ; Run the exit code from 1 MiB, where a kernel runs: copy it there first.
    mov rsi, exit_code
    mov rdi, 0x100000
    mov rcx, exit_code_end - exit_code
    rep movsb
    mov rax, 0x100000
    jmp rax
exit_code:
    mov al, 0x2a
    out 0xf4, al
halt:
    hlt
    jmp halt
exit_code_end:
align 8
gdt:
    dq 0
    dq 0x00209a0000000000       ; 64-bit code segment
gdt_descriptor:
    dw gdt_descriptor - gdt - 1
    dd gdt
